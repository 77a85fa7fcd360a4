// The kernel relay's program: each segment that arrives on a relayed socket is sent straight
// out of its peer's egress, in the kernel, without waking the thread that owns the
// connection (docs/ARCHITECTURE.md, "The kernel relay").
//
// Two maps, both filled by the worker thread that owns a connection:
// - `sluice_peers` (SOCKHASH): key = the cookie of a relayed socket, value = its peer, the
//   socket its bytes go out of. Both entries are in place before either socket is in
//   `sluice_relayed`, so the program never meets a socket without a peer.
// - `sluice_relayed` (SOCKHASH, this program attached as its stream verdict): the sockets
//   whose received bytes are redirected, keyed by their own cookie.
// A zero-length segment is a bare FIN. TCP has already taken note of it (the owning thread
// sees POLLRDHUP and passes the FIN on once every byte before it is delivered), so the empty
// buffer is dropped. Redirected, it would record EPIPE on the peer; passed to its own socket
// while that socket's queue holds redirected bytes on their way out, it is queued behind them
// and fails there, which records EPIPE on it and stops its sending: the bytes after are lost.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, __u64);
} sluice_peers SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, __u64);
} sluice_relayed SEC(".maps");

SEC("sk_skb")
int sluice_redirect(struct __sk_buff *skb) {
    if (skb->len == 0) return SK_DROP;
    __u64 cookie = bpf_get_socket_cookie(skb);
    return bpf_sk_redirect_hash(skb, &sluice_peers, &cookie, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
