// Things Node cannot do by itself, kept as small as possible:
//  1. create a listening unix socket whose fd the parent never accepts on, so it
//     can be handed to children as fd 0 (FCGI_LISTENSOCK_FILENO), as spawn-fcgi does;
//     libuv starts accepting as soon as Node listens, which would steal connections.
//  2. read the kernel's accept queue of listening unix sockets (sock_diag,
//     UNIX_DIAG_RQLEN: what `ss -xl` shows as Recv-Q / Send-Q).
//  3. tell whether the app accepted one of our connections: the other end of a
//     connection still in the accept queue has no inode yet (UNIX_DIAG_PEER is 0).
//  4. tell which process serves a connection on a shared socket: the inode of the
//     accepted end (sock_diag UNIX_DIAG_PEER), found in that process's /proc/PID/fd.
//     (SO_PEERCRED cannot: on a connect()ed unix socket it names the process that
//     called listen(), which is upfront for every child.)
//  5. a thread's CPU scheduling policy (sched_getscheduler/sched_setscheduler on a tid,
//     0: the calling thread): set around spawn() so that a child starts under SCHED_BATCH
//     (fork copies the calling thread's policy), as `chrt --batch 0 COMMAND` would, with
//     no window; and on each of the front's own threads (`chrt --batch -a -p 0 PID`).
//  6. the calling thread's CPU affinity (sched_getaffinity/sched_setaffinity on tid 0):
//     set around spawn() so that a child starts on its CPU (fork copies the mask), as
//     `taskset -c CPU COMMAND` would.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#define TCP_LISTEN_STATE 10

static napi_value throw_errno(napi_env env, const char *syscall, int err, const char *path) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s %s failed: %s (%d)", syscall, path ? path : "", strerror(err), err);
  napi_value m, e, code, errnoV, sc;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  const char *name = err == EADDRINUSE ? "EADDRINUSE" : err == EACCES ? "EACCES" : err == ENOENT ? "ENOENT"
                   : err == ENAMETOOLONG ? "ENAMETOOLONG" : err == EINVAL ? "EINVAL" : err == EPERM ? "EPERM"
                   : err == ESRCH ? "ESRCH" : "EIO";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, e, "code", code);
  napi_create_int32(env, -err, &errnoV);
  napi_set_named_property(env, e, "errno", errnoV);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, e, "syscall", sc);
  napi_throw(env, e);
  return NULL;
}

// listenUnix(path: string, backlog: number): number (fd, close-on-exec)
static napi_value ListenUnix(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "path must be a string");
    return NULL;
  }
  if (len >= sizeof path - 1) return throw_errno(env, "bind", ENAMETOOLONG, path);
  int32_t backlog = 1024;
  napi_get_value_int32(env, argv[1], &backlog);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno, path);
  struct sockaddr_un addr; memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX; memcpy(addr.sun_path, path, len);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { int e = errno; close(fd); return throw_errno(env, "bind", e, path); }
  if (listen(fd, backlog) < 0) { int e = errno; close(fd); return throw_errno(env, "listen", e, path); }
  napi_value r; napi_create_int32(env, fd, &r); return r;
}

// closeFd(fd: number): void
static napi_value CloseFd(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_get_value_int32(env, argv[0], &fd);
  if (fd > 2) close(fd);
  return NULL;
}

// acceptQueues(): Array<[inode, path, queued, backlog]> for every listening unix socket
static napi_value AcceptQueues(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out; napi_create_array(env, &out); uint32_t n = 0;
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return throw_errno(env, "socket(NETLINK_SOCK_DIAG)", errno, NULL);
  struct { struct nlmsghdr nlh; struct unix_diag_req req; } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = 1 << TCP_LISTEN_STATE;
  msg.req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN;
  struct sockaddr_nl sa; memset(&sa, 0, sizeof sa); sa.nl_family = AF_NETLINK;
  if (sendto(nl, &msg, sizeof msg, 0, (struct sockaddr *)&sa, sizeof sa) < 0) { int e = errno; close(nl); return throw_errno(env, "sendto(sock_diag)", e, NULL); }
  static char buf[65536];
  for (;;) {
    ssize_t got = recv(nl, buf, sizeof buf, 0);
    if (got < 0) { if (errno == EINTR) continue; int e = errno; close(nl); return throw_errno(env, "recv(sock_diag)", e, NULL); }
    if (got == 0) break;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    int done = 0;
    for (; NLMSG_OK(h, (size_t)got); h = NLMSG_NEXT(h, got)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) { done = 1; break; }
      struct unix_diag_msg *d = NLMSG_DATA(h);
      struct rtattr *a = (struct rtattr *)(d + 1);
      int alen = h->nlmsg_len - NLMSG_LENGTH(sizeof *d);
      char name[256]; size_t nameLen = 0; uint32_t rq = 0, wq = 0;
      for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
        if (a->rta_type == UNIX_DIAG_NAME) {
          nameLen = RTA_PAYLOAD(a); if (nameLen > sizeof name - 1) nameLen = sizeof name - 1;
          memcpy(name, RTA_DATA(a), nameLen);
          if (nameLen > 0 && name[0] == 0) name[0] = '@'; // abstract namespace, as ss prints it
          while (nameLen > 0 && name[nameLen - 1] == 0) nameLen--;
        } else if (a->rta_type == UNIX_DIAG_RQLEN) {
          struct unix_diag_rqlen *q = RTA_DATA(a); rq = q->udiag_rqueue; wq = q->udiag_wqueue;
        }
      }
      napi_value row, v; napi_create_array_with_length(env, 4, &row);
      napi_create_double(env, (double)d->udiag_ino, &v); napi_set_element(env, row, 0, v);
      napi_create_string_utf8(env, name, nameLen, &v); napi_set_element(env, row, 1, v);
      napi_create_uint32(env, rq, &v); napi_set_element(env, row, 2, v);
      napi_create_uint32(env, wq, &v); napi_set_element(env, row, 3, v);
      napi_set_element(env, out, n++, row);
    }
    if (done) break;
  }
  close(nl);
  return out;
}

// peerInode(fd: number): [inode, peerInode] of a connected unix socket, or null
// (not a unix socket, not connected, or the kernel does not answer).
static napi_value PeerInode(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_value nul; napi_get_null(env, &nul);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return nul;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) return nul;
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return throw_errno(env, "socket(NETLINK_SOCK_DIAG)", errno, NULL);
  struct { struct nlmsghdr nlh; struct unix_diag_req req; } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0U;
  msg.req.udiag_ino = (uint32_t)st.st_ino;
  msg.req.udiag_cookie[0] = ~0U; msg.req.udiag_cookie[1] = ~0U; // no cookie: look up by inode
  msg.req.udiag_show = UDIAG_SHOW_PEER;
  struct sockaddr_nl sa; memset(&sa, 0, sizeof sa); sa.nl_family = AF_NETLINK;
  if (sendto(nl, &msg, sizeof msg, 0, (struct sockaddr *)&sa, sizeof sa) < 0) { int e = errno; close(nl); return throw_errno(env, "sendto(sock_diag)", e, NULL); }
  char buf[8192];
  ssize_t got;
  do { got = recv(nl, buf, sizeof buf, 0); } while (got < 0 && errno == EINTR);
  close(nl);
  if (got <= 0) return nul;
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  for (; NLMSG_OK(h, (size_t)got); h = NLMSG_NEXT(h, got)) {
    if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) break;
    struct unix_diag_msg *d = NLMSG_DATA(h);
    if (d->udiag_ino != (uint32_t)st.st_ino) continue;
    struct rtattr *a = (struct rtattr *)(d + 1);
    int alen = h->nlmsg_len - NLMSG_LENGTH(sizeof *d);
    for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type != UNIX_DIAG_PEER) continue;
      uint32_t peer = *(uint32_t *)RTA_DATA(a);
      napi_value row, v; napi_create_array_with_length(env, 2, &row);
      napi_create_double(env, (double)d->udiag_ino, &v); napi_set_element(env, row, 0, v);
      napi_create_double(env, (double)peer, &v); napi_set_element(env, row, 1, v);
      return row;
    }
  }
  return nul;
}

// threadSched(tid = 0): [policy, priority] of thread tid, 0 the calling one (SCHED_RESET_ON_FORK masked out)
static napi_value ThreadSched(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t tid = 0;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &tid) != napi_ok) {
    napi_throw_type_error(env, NULL, "tid must be a number");
    return NULL;
  }
  int policy = sched_getscheduler(tid);
  struct sched_param param = { 0 };
  if (policy < 0 || sched_getparam(tid, &param) != 0) return throw_errno(env, "sched_getscheduler", errno, NULL);
  napi_value out, v;
  napi_create_array_with_length(env, 2, &out);
  napi_create_int32(env, policy & ~SCHED_RESET_ON_FORK, &v); napi_set_element(env, out, 0, v);
  napi_create_int32(env, param.sched_priority, &v); napi_set_element(env, out, 1, v);
  return out;
}

// setThreadSched(policy: number, priority: number, tid = 0): void, for thread tid, 0 the calling one
static napi_value SetThreadSched(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t policy = 0, priority = 0, tid = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &policy) != napi_ok || napi_get_value_int32(env, argv[1], &priority) != napi_ok
      || (argc >= 3 && napi_get_value_int32(env, argv[2], &tid) != napi_ok)) {
    napi_throw_type_error(env, NULL, "policy, priority (and tid) must be numbers");
    return NULL;
  }
  struct sched_param param = { .sched_priority = priority };
  if (sched_setscheduler(tid, policy, &param) != 0) return throw_errno(env, "sched_setscheduler", errno, NULL);
  return NULL;
}

// threadAffinity(): the CPUs the calling thread may run on, ascending
static napi_value ThreadAffinity(napi_env env, napi_callback_info info) {
  (void)info;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return throw_errno(env, "sched_getaffinity", errno, NULL);
  napi_value out, v;
  napi_create_array(env, &out);
  uint32_t n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    napi_create_int32(env, cpu, &v);
    napi_set_element(env, out, n++, v);
  }
  return out;
}

// setThreadAffinity(cpus: number[]): void, for the calling thread
static napi_value SetThreadAffinity(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool isArray = false;
  uint32_t len = 0;
  if (argc < 1 || napi_is_array(env, argv[0], &isArray) != napi_ok || !isArray || napi_get_array_length(env, argv[0], &len) != napi_ok || len == 0) {
    napi_throw_type_error(env, NULL, "cpus must be a non-empty array of CPU numbers");
    return NULL;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < len; i++) {
    napi_value v; int32_t cpu = -1;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || napi_get_value_int32(env, v, &cpu) != napi_ok || cpu < 0 || cpu >= CPU_SETSIZE) {
      napi_throw_range_error(env, NULL, "a CPU number is out of range");
      return NULL;
    }
    CPU_SET(cpu, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) != 0) return throw_errno(env, "sched_setaffinity", errno, NULL);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "listenUnix", NULL, ListenUnix, NULL, NULL, NULL, napi_default, NULL },
    { "closeFd", NULL, CloseFd, NULL, NULL, NULL, napi_default, NULL },
    { "acceptQueues", NULL, AcceptQueues, NULL, NULL, NULL, napi_default, NULL },
    { "peerInode", NULL, PeerInode, NULL, NULL, NULL, napi_default, NULL },
    { "threadSched", NULL, ThreadSched, NULL, NULL, NULL, napi_default, NULL },
    { "setThreadSched", NULL, SetThreadSched, NULL, NULL, NULL, napi_default, NULL },
    { "threadAffinity", NULL, ThreadAffinity, NULL, NULL, NULL, napi_default, NULL },
    { "setThreadAffinity", NULL, SetThreadAffinity, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
