{
  "targets": [
    {
      "target_name": "ferry_udp_batch",
      "sources": ["src/dns/native/udp_batch.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
