/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/cli/graph.test.ts > TAP > --network picks one network and the hosts it spans > dot of front 1`] = `
graph ferry {
  graph [rankdir=LR, fontname="Helvetica", labelloc=t, label="ferry graph of host-a\\ncluster redis://10.0.0.5:6379 (ready, revision 42)\\nthe agent matches Redis"];
  node [fontname="Helvetica", fontsize=10];
  edge [fontname="Helvetica", fontsize=9];
  subgraph cluster_h0 {
    graph [label="host host-a (this host)\\nferry 0.9.0\\nheartbeat 1 s ago", style="rounded", color="gray40"];
    h0_vtep [shape=diamond, label="VTEP\\n10.0.0.11"];
    h0_n0 [shape=box, style="rounded", label="network front\\nbridge fy-f2f2f2f2f2f2\\n10.20.0.0/24 gw 10.20.0.1\\nfd00:1::/64 gw fd00:1::1\\nno-icc"];
    e0 [shape=ellipse, label="web\\n10.20.0.2/24\\nfd00:1::2/64\\n0.0.0.0:8080->80/tcp\\n[::1]:5353-5354->53-54/udp"];
    e0 -- h0_n0;
    e1 [shape=ellipse, label="c2c2c2c2c2c2\\n10.20.0.3/24", style="dashed"];
    e1 -- h0_n0;
  }
}

`

exports[`test/cli/graph.test.ts > TAP > three hosts: golden JSON and DOT > dot 1`] = `
graph ferry {
  graph [rankdir=LR, fontname="Helvetica", labelloc=t, label="ferry graph of host-a\\ncluster redis://10.0.0.5:6379 (ready, revision 42)\\n3 difference(s), in red"];
  node [fontname="Helvetica", fontsize=10];
  edge [fontname="Helvetica", fontsize=9];
  subgraph cluster_h0 {
    graph [label="host host-a (this host)\\nferry 0.9.0\\nheartbeat 1 s ago", style="rounded", color="gray40"];
    h0_vtep [shape=diamond, label="VTEP\\n10.0.0.11"];
    h0_n0 [shape=box, style="rounded", label="network front\\nbridge fy-f2f2f2f2f2f2\\n10.20.0.0/24 gw 10.20.0.1\\nfd00:1::/64 gw fd00:1::1\\nno-icc"];
    e0 [shape=ellipse, label="web\\n10.20.0.2/24\\nfd00:1::2/64\\n0.0.0.0:8080->80/tcp\\n[::1]:5353-5354->53-54/udp"];
    e0 -- h0_n0;
    e1 [shape=ellipse, label="c2c2c2c2c2c2\\n10.20.0.3/24", style="dashed"];
    e1 -- h0_n0;
    h0_n1 [shape=box, style="rounded", label="network ov1\\nbridge fyo-ov1\\n10.30.0.0/16 gw 10.30.0.1\\noverlay ov1 vni 4096"];
    e2 [shape=ellipse, label="api\\n10.30.0.2/16"];
    e2 -- h0_n1;
    h0_n1 -- h0_vtep [label="fyv-ov1"];
  }
  subgraph cluster_h1 {
    graph [label="host host-b\\nferry 0.9.0\\nheartbeat 1.5 s ago", style="rounded", color="gray40"];
    h1_vtep [shape=diamond, label="VTEP\\n10.0.0.12"];
    h1_n1 [shape=box, style="rounded", label="network ov1\\n10.30.0.0/16 gw 10.30.0.1\\noverlay ov1 vni 4096"];
    e3 [shape=ellipse, label="cache\\n10.30.0.3/16\\n(from Redis)"];
    e3 -- h1_n1;
    e4 [shape=ellipse, label="worker\\n10.30.0.4/16\\n(from Redis)\\nMISSING: no FDB entry", color="#c0392b", fontcolor="#c0392b"];
    e4 -- h1_n1 [color="#c0392b"];
    h1_n1 -- h1_vtep;
  }
  subgraph cluster_h2 {
    graph [label="host host-c\\nferry 0.8.2\\nheartbeat 7.2 s ago (LATE)", style="rounded", color="#d68910", penwidth=2];
    h2_vtep [shape=diamond, label="VTEP\\n10.0.0.13"];
    h2_n1 [shape=box, style="rounded", label="network ov1\\n10.30.0.0/16 gw 10.30.0.1\\noverlay ov1 vni 4096"];
    e5 [shape=ellipse, label="batch\\n10.30.0.5/16\\n(from Redis)"];
    e5 -- h2_n1;
    h2_n1 -- h2_vtep;
  }
  subgraph cluster_h3 {
    graph [label="host unknown VTEP 10.0.0.99\\nnot registered in Redis (UNKNOWN)", style="rounded", color="#d68910", penwidth=2];
    h3_vtep [shape=diamond, label="VTEP\\n10.0.0.99"];
    h3_n1 [shape=box, style="rounded", label="network ov1\\n10.30.0.0/16 gw 10.30.0.1\\noverlay ov1 vni 4096"];
    e6 [shape=ellipse, label="MAC 02:42:0a:1e:00:09\\n10.30.0.9/16\\n(only in the kernel)\\nSTALE: in the kernel, not in the cluster", color="#c0392b", fontcolor="#c0392b", style="dashed"];
    e6 -- h3_n1 [color="#c0392b"];
    h3_n1 -- h3_vtep;
  }
  h0_vtep -- h1_vtep [label="ov1 vni 4096\\n1 difference(s)", penwidth=2, color="#c0392b", fontcolor="#c0392b"];
  h0_vtep -- h2_vtep [label="ov1 vni 4096", penwidth=2, color="#2471a3"];
  h0_vtep -- h3_vtep [label="ov1 vni 4096\\n1 difference(s)", penwidth=2, color="#c0392b", fontcolor="#c0392b"];
  h1_vtep -- h2_vtep [label="ov1 vni 4096\\n(from Redis)", penwidth=2, style="dashed", color="#2471a3"];
  differences [shape=note, color="#c0392b", fontcolor="#c0392b", label="differences:\\nhost host-c: last heartbeat 7.2 s ago (late)\\nov1: 10.30.0.4 (worker on host-b) is in Redis but not programmed: no FDB entry\\nov1: 10.30.0.9 is programmed here (to 10.0.0.99) but not in Redis"];
}

`

exports[`test/cli/graph.test.ts > TAP > three hosts: golden JSON and DOT > json 1`] = `
{
  "self": "host-a",
  "cluster": {
    "url": "redis://10.0.0.5:6379",
    "state": "ready",
    "revision": 42
  },
  "hosts": [
    {
      "id": "host-a",
      "self": true,
      "vtep": "10.0.0.11",
      "state": "this host",
      "version": "0.9.0",
      "heartbeatAgeS": 1
    },
    {
      "id": "host-b",
      "self": false,
      "vtep": "10.0.0.12",
      "version": "0.9.0",
      "heartbeatAgeS": 1.5,
      "state": "ok"
    },
    {
      "id": "host-c",
      "self": false,
      "vtep": "10.0.0.13",
      "version": "0.8.2",
      "heartbeatAgeS": 7.2,
      "state": "late"
    },
    {
      "id": "unknown VTEP 10.0.0.99",
      "self": false,
      "vtep": "10.0.0.99",
      "state": "unknown"
    }
  ],
  "networks": [
    {
      "id": "f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2",
      "name": "front",
      "bridge": "fy-f2f2f2f2f2f2",
      "subnet": "10.20.0.0/24",
      "gateway": "10.20.0.1",
      "subnet6": "fd00:1::/64",
      "gateway6": "fd00:1::1",
      "flags": [
        "no-icc"
      ],
      "hosts": [
        "host-a"
      ]
    },
    {
      "id": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "name": "ov1",
      "bridge": "fyo-ov1",
      "subnet": "10.30.0.0/16",
      "gateway": "10.30.0.1",
      "overlay": {
        "name": "ov1",
        "vni": 4096,
        "vxlan": "fyv-ov1"
      },
      "flags": [],
      "hosts": [
        "host-a",
        "host-b",
        "host-c",
        "unknown VTEP 10.0.0.99"
      ]
    }
  ],
  "endpoints": [
    {
      "id": "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1",
      "host": "host-a",
      "network": "f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2",
      "name": "web",
      "addresses": [
        "10.20.0.2/24",
        "fd00:1::2/64"
      ],
      "ports": [
        "0.0.0.0:8080->80/tcp",
        "[::1]:5353-5354->53-54/udp"
      ],
      "source": "agent",
      "state": "ok"
    },
    {
      "id": "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2",
      "host": "host-a",
      "network": "f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2",
      "name": "c2c2c2c2c2c2",
      "addresses": [
        "10.20.0.3/24"
      ],
      "ports": [],
      "source": "agent",
      "state": "created"
    },
    {
      "id": "e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3",
      "host": "host-a",
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "name": "api",
      "addresses": [
        "10.30.0.2/16"
      ],
      "ports": [],
      "source": "agent",
      "state": "ok"
    },
    {
      "id": "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1",
      "host": "host-b",
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "name": "cache",
      "addresses": [
        "10.30.0.3/16"
      ],
      "ports": [],
      "source": "cluster",
      "state": "ok"
    },
    {
      "id": "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
      "host": "host-b",
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "name": "worker",
      "addresses": [
        "10.30.0.4/16"
      ],
      "ports": [],
      "source": "cluster",
      "state": "missing",
      "detail": "no FDB entry"
    },
    {
      "id": "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1",
      "host": "host-c",
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "name": "batch",
      "addresses": [
        "10.30.0.5/16"
      ],
      "ports": [],
      "source": "cluster",
      "state": "ok"
    },
    {
      "id": "kernel 10.30.0.9",
      "host": "unknown VTEP 10.0.0.99",
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "name": "MAC 02:42:0a:1e:00:09",
      "addresses": [
        "10.30.0.9/16"
      ],
      "ports": [],
      "source": "kernel",
      "state": "stale",
      "detail": "in the kernel, not in the cluster"
    }
  ],
  "tunnels": [
    {
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "overlay": "ov1",
      "vni": 4096,
      "from": "host-a",
      "to": "host-b",
      "view": "kernel",
      "differences": 1
    },
    {
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "overlay": "ov1",
      "vni": 4096,
      "from": "host-a",
      "to": "host-c",
      "view": "kernel",
      "differences": 0
    },
    {
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "overlay": "ov1",
      "vni": 4096,
      "from": "host-a",
      "to": "unknown VTEP 10.0.0.99",
      "view": "kernel",
      "differences": 1
    },
    {
      "network": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
      "overlay": "ov1",
      "vni": 4096,
      "from": "host-b",
      "to": "host-c",
      "view": "cluster",
      "differences": 0
    }
  ],
  "differences": [
    "host host-c: last heartbeat 7.2 s ago (late)",
    "ov1: 10.30.0.4 (worker on host-b) is in Redis but not programmed: no FDB entry",
    "ov1: 10.30.0.9 is programmed here (to 10.0.0.99) but not in Redis"
  ]
}

`
