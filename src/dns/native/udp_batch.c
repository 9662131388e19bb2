/*
 * ferry's batched UDP socket (src/dns/batch.ts): one wake-up of Node's event
 * loop reads up to `max` datagrams with one recvmmsg into one preallocated
 * buffer, JS answers them all in one call, and the answers leave with one
 * sendmmsg. N-API only (no V8 or libuv ABI beyond uv_poll), built by node-gyp.
 *
 * Layout shared with JS (every integer little-endian, as on the hosts ferry runs on):
 *   in    max slots of `slot` bytes: datagram i at i * slot
 *   meta  max records of META bytes: int32 length (-1: longer than `slot`,
 *         dropped), int32 source port, uint8 family (4 or 6), uint8 length of the
 *         source address text, then the text (inet_ntop, at most 46 bytes)
 *   out   answers, anywhere in it; `send(count)` reads `count` records of OUT_META
 *         bytes from `outMeta`: int32 slot (whose source is the destination),
 *         int32 offset in `out`, int32 length
 * Every index and length that JS hands back is checked here before use.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define META 64
#define OUT_META 12
#define MAX_BATCH 1024
/* Rounds of recvmmsg per wake-up at most: other handles of the loop get their turn. */
#define MAX_ROUNDS 8

typedef struct {
  napi_env env;
  int fd;
  int family;
  uv_poll_t poll;
  int polling;
  int closing;
  napi_ref cb;
  napi_ref self;
  napi_async_context actx;
  uint8_t *in; size_t in_len;
  uint8_t *meta; size_t meta_len;
  uint8_t *out; size_t out_len;
  uint8_t *out_meta; size_t out_meta_len;
  napi_ref in_ref, meta_ref, out_ref, out_meta_ref;
  uint32_t max, slot;
  struct mmsghdr *msgs;
  struct iovec *iovs;
  struct sockaddr_storage *addrs;
  struct mmsghdr *smsgs;
  struct iovec *siovs;
  uint64_t recv_calls, recv_datagrams, send_calls, send_errors, truncated;
} sock_t;

#define CHECK(call) do { if ((call) != napi_ok) { throw_last(env, #call); return NULL; } } while (0)

static void throw_last (napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  napi_value pending;
  bool is_pending = false;
  napi_is_exception_pending(env, &is_pending);
  if (is_pending) return;
  char buf[256];
  snprintf(buf, sizeof buf, "udp batch: %s failed: %s", what, info != NULL && info->error_message != NULL ? info->error_message : "unknown");
  napi_throw_error(env, NULL, buf);
  (void)pending;
}

static napi_value throw_errno (napi_env env, const char *what, int err) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s", what, strerror(err));
  napi_value msg, code, e;
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
  napi_create_int32(env, err, &code);
  napi_create_error(env, NULL, msg, &e);
  napi_set_named_property(env, e, "errno", code);
  napi_throw(env, e);
  return NULL;
}

static sock_t *unwrap (napi_env env, napi_value v) {
  sock_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, NULL, "udp batch: not a socket handle");
    return NULL;
  }
  return s;
}

/* The call's arguments (`want` of them into argv) and the handle in the first; NULL with an exception pending. */
static sock_t *handle_args (napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) { throw_last(env, "napi_get_cb_info"); return NULL; }
  if (argc < want) {
    napi_throw_type_error(env, NULL, "udp batch: missing arguments");
    return NULL;
  }
  return unwrap(env, argv[0]);
}

static void free_sock (sock_t *s) {
  free(s->msgs); free(s->iovs); free(s->addrs); free(s->smsgs); free(s->siovs);
  free(s);
}

static void release_refs (sock_t *s) {
  napi_env env = s->env;
  napi_ref *refs[] = { &s->cb, &s->in_ref, &s->meta_ref, &s->out_ref, &s->out_meta_ref };
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
    if (*refs[i] != NULL) { napi_delete_reference(env, *refs[i]); *refs[i] = NULL; }
  }
  if (s->actx != NULL) { napi_async_destroy(env, s->actx); s->actx = NULL; }
  s->in = s->meta = s->out = s->out_meta = NULL;
}

static void on_closed (uv_handle_t *h) {
  sock_t *s = h->data;
  /* The external's finalizer has run or will: it frees once `closing` is 2. */
  if (s->closing == 2) free_sock(s);
  else s->closing = 3;
}

static void do_close (sock_t *s) {
  if (s->closing) return;
  s->closing = 1;
  release_refs(s);
  if (s->polling) {
    /* uv_close stops the poll and forgets the fd at once (only the handle's memory waits for
     * on_closed), so the socket is closed now and its port is free when close() returns. */
    uv_close((uv_handle_t *)&s->poll, on_closed);
    close(s->fd);
    s->fd = -1;
  } else {
    if (s->fd >= 0) { close(s->fd); s->fd = -1; }
    s->closing = 3;
  }
}

static void finalize (napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  sock_t *s = data;
  if (!s->closing) do_close(s);
  if (s->closing == 3) free_sock(s);
  else s->closing = 2; /* uv_close pending: on_closed frees */
}

static int parse_addr (int family, const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return -1;
    *len = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return -1;
    *len = sizeof *a;
  }
  return 0;
}

static int get_string (napi_env env, napi_value v, char *buf, size_t cap) {
  size_t n = 0;
  if (napi_get_value_string_latin1(env, v, buf, cap, &n) != napi_ok) return -1;
  if (n + 1 >= cap) return -1;
  return 0;
}

/* open(family 4|6, ip, port, rcvbuf) → handle; binds exclusively (no SO_REUSEADDR/PORT). */
static napi_value js_open (napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family = 0, port = -1, rcvbuf = 0;
  char ip[64];
  if (argc < 4 || napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6) ||
      get_string(env, argv[1], ip, sizeof ip) != 0 || napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      port < 0 || port > 65535 || napi_get_value_int32(env, argv[3], &rcvbuf) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp batch: open(family 4|6, ip, port 0-65535, rcvbuf)");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_addr(family, ip, port, &ss, &sl) != 0) {
    napi_throw_type_error(env, NULL, "udp batch: not an address of that family");
    return NULL;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    int e = errno; close(fd); return throw_errno(env, "setsockopt IPV6_V6ONLY", e);
  }
  if (rcvbuf > 0) (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf); /* capped by rmem_max */
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    int e = errno; close(fd);
    char what[128];
    snprintf(what, sizeof what, "bind %s port %d", ip, port);
    return throw_errno(env, what, e);
  }
  sock_t *s = calloc(1, sizeof *s);
  if (s == NULL) { close(fd); return throw_errno(env, "calloc", ENOMEM); }
  s->env = env;
  s->fd = fd;
  s->family = family;
  napi_value ext;
  if (napi_create_external(env, s, finalize, NULL, &ext) != napi_ok) {
    close(fd); free(s);
    throw_last(env, "napi_create_external");
    return NULL;
  }
  return ext;
}

/* port(handle) → the bound port. */
static napi_value js_port (napi_env env, napi_callback_info info) {
  napi_value argv[1], r;
  sock_t *s = handle_args(env, info, 1, argv);
  if (s == NULL) return NULL;
  if (s->fd < 0) return throw_errno(env, "port", EBADF);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) != 0) return throw_errno(env, "getsockname", errno);
  int port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port) : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  CHECK(napi_create_int32(env, port, &r));
  return r;
}

static void fill_meta (sock_t *s, uint32_t i, int32_t len) {
  uint8_t *m = s->meta + (size_t)i * META;
  int32_t port = 0;
  char text[INET6_ADDRSTRLEN] = "";
  struct sockaddr_storage *ss = &s->addrs[i];
  if (ss->ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    port = ntohs(a->sin_port);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
  } else if (ss->ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    port = ntohs(a->sin6_port);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
  } else {
    len = -1; /* no source address: nothing to answer */
  }
  size_t tl = strlen(text);
  memcpy(m, &len, 4);
  memcpy(m + 4, &port, 4);
  m[8] = (uint8_t)s->family;
  m[9] = (uint8_t)tl;
  memcpy(m + 10, text, tl);
}

/*
 * cb(n) from the loop: a batch of n datagrams, or n < 0, libuv's error. 0 when it returned; -1 when it could not
 * be called or threw (reported as Node reports an uncaught exception).
 */
static int call_js (sock_t *s, int32_t n) {
  napi_env env = s->env;
  napi_value cb, recv, argv[1], result;
  if (napi_get_reference_value(env, s->cb, &cb) != napi_ok || cb == NULL || napi_get_global(env, &recv) != napi_ok) return -1;
  napi_create_int32(env, n, &argv[0]);
  if (napi_make_callback(env, s->actx, recv, cb, 1, argv, &result) == napi_ok) return 0;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  return -1;
}

static void on_readable (uv_poll_t *h, int status, int events) {
  sock_t *s = h->data;
  (void)events;
  if (s->closing) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  if (status < 0) {
    /* The poll failed (libuv would report it again at once): stop reading and tell JS. */
    uv_poll_stop(&s->poll);
    call_js(s, status);
    napi_close_handle_scope(s->env, scope);
    return;
  }
  for (int round = 0; round < MAX_ROUNDS && !s->closing; round++) {
    for (uint32_t i = 0; i < s->max; i++) {
      s->iovs[i].iov_base = s->in + (size_t)i * s->slot;
      s->iovs[i].iov_len = s->slot;
      memset(&s->msgs[i].msg_hdr, 0, sizeof s->msgs[i].msg_hdr);
      s->msgs[i].msg_hdr.msg_iov = &s->iovs[i];
      s->msgs[i].msg_hdr.msg_iovlen = 1;
      s->msgs[i].msg_hdr.msg_name = &s->addrs[i];
      s->msgs[i].msg_hdr.msg_namelen = sizeof s->addrs[i];
      s->msgs[i].msg_len = 0;
    }
    int n = recvmmsg(s->fd, s->msgs, s->max, MSG_DONTWAIT, NULL);
    s->recv_calls++;
    if (n <= 0) break;
    s->recv_datagrams += (uint64_t)n;
    for (int i = 0; i < n; i++) {
      int32_t len = (int32_t)s->msgs[i].msg_len;
      if ((s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0) { len = -1; s->truncated++; }
      fill_meta(s, (uint32_t)i, len);
    }
    /* A throw of the callback is reported; the next wake-up reads on. */
    if (call_js(s, n) != 0) break;
    if ((uint32_t)n < s->max) break;
  }
  napi_close_handle_scope(s->env, scope);
}

static int get_buffer (napi_env env, napi_value v, uint8_t **p, size_t *len, napi_ref *ref) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return -1;
  if (napi_get_buffer_info(env, v, (void **)p, len) != napi_ok) return -1;
  return napi_create_reference(env, v, 1, ref) == napi_ok ? 0 : -1;
}

/* start(handle, in, meta, out, outMeta, max, slot, cb): poll the socket; cb(n) per batch of n datagrams. */
static napi_value js_start (napi_env env, napi_callback_info info) {
  napi_value argv[8];
  sock_t *s = handle_args(env, info, 8, argv);
  if (s == NULL) return NULL;
  if (s->closing || s->fd < 0) return throw_errno(env, "start", EBADF);
  if (s->polling) { napi_throw_error(env, NULL, "udp batch: already started"); return NULL; }
  uint32_t max = 0, slot = 0;
  napi_valuetype t;
  if (napi_get_value_uint32(env, argv[5], &max) != napi_ok || napi_get_value_uint32(env, argv[6], &slot) != napi_ok ||
      max < 1 || max > MAX_BATCH || slot < 12 || slot > 65536 ||
      napi_typeof(env, argv[7], &t) != napi_ok || t != napi_function) {
    napi_throw_range_error(env, NULL, "udp batch: start(handle, in, meta, out, outMeta, max 1-1024, slot 12-65536, cb)");
    return NULL;
  }
  if (get_buffer(env, argv[1], &s->in, &s->in_len, &s->in_ref) != 0 || get_buffer(env, argv[2], &s->meta, &s->meta_len, &s->meta_ref) != 0 ||
      get_buffer(env, argv[3], &s->out, &s->out_len, &s->out_ref) != 0 || get_buffer(env, argv[4], &s->out_meta, &s->out_meta_len, &s->out_meta_ref) != 0 ||
      s->in_len < (size_t)max * slot || s->meta_len < (size_t)max * META || s->out_meta_len < (size_t)max * OUT_META) {
    release_refs(s);
    napi_throw_range_error(env, NULL, "udp batch: buffers too small for max × slot");
    return NULL;
  }
  s->max = max;
  s->slot = slot;
  s->msgs = calloc(max, sizeof *s->msgs);
  s->iovs = calloc(max, sizeof *s->iovs);
  s->addrs = calloc(max, sizeof *s->addrs);
  s->smsgs = calloc(max, sizeof *s->smsgs);
  s->siovs = calloc(max, sizeof *s->siovs);
  napi_value name;
  napi_create_string_utf8(env, "ferry:udp-batch", NAPI_AUTO_LENGTH, &name);
  if (s->msgs == NULL || s->iovs == NULL || s->addrs == NULL || s->smsgs == NULL || s->siovs == NULL ||
      napi_create_reference(env, argv[7], 1, &s->cb) != napi_ok || napi_async_init(env, NULL, name, &s->actx) != napi_ok) {
    release_refs(s);
    return throw_errno(env, "start", ENOMEM);
  }
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) { release_refs(s); throw_last(env, "napi_get_uv_event_loop"); return NULL; }
  int rc = uv_poll_init(loop, &s->poll, s->fd);
  if (rc != 0) { release_refs(s); napi_throw_error(env, NULL, uv_strerror(rc)); return NULL; }
  s->poll.data = s;
  s->polling = 1;
  rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (rc != 0) { napi_throw_error(env, NULL, uv_strerror(rc)); return NULL; }
  return NULL;
}

/*
 * send(handle, count) → datagrams sent: the answers described by the first `count`
 * records of outMeta, each to the source of its slot, in one sendmmsg (more when
 * one destination fails: it is skipped and counted). Bad records are skipped.
 */
static napi_value js_send (napi_env env, napi_callback_info info) {
  napi_value argv[2], r;
  sock_t *s = handle_args(env, info, 2, argv);
  if (s == NULL) return NULL;
  uint32_t count = 0;
  if (napi_get_value_uint32(env, argv[1], &count) != napi_ok) { napi_throw_type_error(env, NULL, "udp batch: send(handle, count)"); return NULL; }
  if (s->closing || s->fd < 0 || s->out == NULL) return throw_errno(env, "send", EBADF);
  if (count > s->max) count = s->max;
  uint32_t k = 0;
  for (uint32_t i = 0; i < count; i++) {
    int32_t slot, off, len;
    const uint8_t *m = s->out_meta + (size_t)i * OUT_META;
    memcpy(&slot, m, 4); memcpy(&off, m + 4, 4); memcpy(&len, m + 8, 4);
    if (slot < 0 || (uint32_t)slot >= s->max || off < 0 || len <= 0 || (size_t)off + (size_t)len > s->out_len) { s->send_errors++; continue; }
    struct sockaddr_storage *ss = &s->addrs[slot];
    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) { s->send_errors++; continue; }
    s->siovs[k].iov_base = s->out + off;
    s->siovs[k].iov_len = (size_t)len;
    memset(&s->smsgs[k].msg_hdr, 0, sizeof s->smsgs[k].msg_hdr);
    s->smsgs[k].msg_hdr.msg_iov = &s->siovs[k];
    s->smsgs[k].msg_hdr.msg_iovlen = 1;
    s->smsgs[k].msg_hdr.msg_name = ss;
    s->smsgs[k].msg_hdr.msg_namelen = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    k++;
  }
  uint32_t done = 0, sent = 0;
  while (done < k) {
    int n = sendmmsg(s->fd, s->smsgs + done, k - done, MSG_DONTWAIT);
    s->send_calls++;
    if (n < 0) {
      if (errno == EINTR) continue;
      /* EAGAIN (the send buffer is full: UDP drops, as the kernel would) or this destination failed: skip one. */
      s->send_errors++;
      done++;
      continue;
    }
    done += (uint32_t)n;
    sent += (uint32_t)n;
  }
  CHECK(napi_create_uint32(env, sent, &r));
  return r;
}

/* sendTo(handle, buffer, port, ip) → 1 sent, 0 not (a forwarded answer, one at a time). */
static napi_value js_send_to (napi_env env, napi_callback_info info) {
  napi_value argv[4], r;
  sock_t *s = handle_args(env, info, 4, argv);
  if (s == NULL) return NULL;
  void *data = NULL;
  size_t len = 0;
  bool is = false;
  int32_t port = -1;
  char ip[64];
  if (napi_is_buffer(env, argv[1], &is) != napi_ok || !is || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 1 || port > 65535 || get_string(env, argv[3], ip, sizeof ip) != 0) {
    napi_throw_type_error(env, NULL, "udp batch: sendTo(handle, buffer, port 1-65535, ip)");
    return NULL;
  }
  if (s->closing || s->fd < 0) return throw_errno(env, "sendTo", EBADF);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_addr(s->family, ip, port, &ss, &sl) != 0) { napi_throw_type_error(env, NULL, "udp batch: sendTo: not an address of the socket's family"); return NULL; }
  ssize_t n;
  do n = sendto(s->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&ss, sl); while (n < 0 && errno == EINTR);
  if (n < 0) s->send_errors++;
  CHECK(napi_create_uint32(env, n < 0 ? 0 : 1, &r));
  return r;
}

/* stats(handle) → [recvmmsg calls, datagrams read, sendmmsg calls, send errors, datagrams over a slot]. */
static napi_value js_stats (napi_env env, napi_callback_info info) {
  napi_value argv[1], arr, v;
  sock_t *s = handle_args(env, info, 1, argv);
  if (s == NULL) return NULL;
  uint64_t vals[] = { s->recv_calls, s->recv_datagrams, s->send_calls, s->send_errors, s->truncated };
  CHECK(napi_create_array_with_length(env, 5, &arr));
  for (uint32_t i = 0; i < 5; i++) {
    CHECK(napi_create_double(env, (double)vals[i], &v));
    CHECK(napi_set_element(env, arr, i, v));
  }
  return arr;
}

/* close(handle): stop polling and close the socket (again: a no-op). */
static napi_value js_close (napi_env env, napi_callback_info info) {
  napi_value argv[1];
  sock_t *s = handle_args(env, info, 1, argv);
  if (s == NULL) return NULL;
  do_close(s);
  return NULL;
}

static napi_value init (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL },
    { "port", NULL, js_port, NULL, NULL, NULL, napi_default, NULL },
    { "start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL },
    { "send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL },
    { "sendTo", NULL, js_send_to, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_value meta, out_meta;
  napi_create_uint32(env, META, &meta);
  napi_create_uint32(env, OUT_META, &out_meta);
  napi_set_named_property(env, exports, "META", meta);
  napi_set_named_property(env, exports, "OUT_META", out_meta);
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
