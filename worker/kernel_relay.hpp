#pragma once
// The kernel relay (docs/ARCHITECTURE.md, "The kernel relay"): a connection's two sockets go
// into a sockmap whose BPF program sends each segment arriving on one straight out of the
// other, in the kernel; the thread that owns the connection only waits for its ends (FIN,
// reset, idle) and does what the user relay does at each (pass the FIN on once every byte
// before it is delivered, reset the other side, count and log).
//
// The master loads the program and creates the maps once, as root, before it forks
// (KernelRelay::load); workers inherit the descriptors and update the maps after dropping
// privileges (allowed: the kernel checks the capability when the map is created, not when
// it is updated through a descriptor).

#include <chrono>
#include <memory>
#include <string>

#include "worker/open_connections.hpp"
#include "worker/relay.hpp"

struct bpf_object;

namespace sluice::worker {

class KernelRelay {
public:
    // Loads the program built into the binary, creates its maps, attaches it, and checks on
    // a loopback pair that bytes really go through. Returns null, with `why` set to one
    // line, when any of it fails (no CAP_BPF or CAP_NET_ADMIN, a kernel without sockmap...).
    static std::unique_ptr<KernelRelay> load(std::string& why);
    ~KernelRelay();
    KernelRelay(const KernelRelay&) = delete;
    KernelRelay& operator=(const KernelRelay&) = delete;

    int peers_fd() const { return peers_fd_; }
    int relayed_fd() const { return relayed_fd_; }

private:
    KernelRelay() = default;
    bpf_object* object_ = nullptr;
    int peers_fd_ = -1;
    int relayed_fd_ = -1;
};

// Hands a connected pair (both sockets non-blocking, nothing pending in user space: every
// byte the thread read has been written) to the kernel and waits until the connection ends,
// as relay() does. `result` holds what the user relay moved before (zero if nothing) and
// gets the rest added. Returns false, with nothing left in the maps and `result` as it was
// (plus any bytes the kernel moved before giving up, already delivered), when the pair
// cannot be relayed in the kernel (a socket no longer established, the map full): the
// caller goes on with the user relay. The caller still owns and closes both sockets.
// `connection` is the pair's entry in the worker's registry: when the worker cut it at its
// deadline (a reset zeroes the sockets' counters), the counts come from what the cutter read.
bool relay_in_kernel(const KernelRelay& maps, int client, int target,
                     std::chrono::milliseconds idle_timeout, RelayResult& result,
                     const OpenConnections::Entry& connection);

// Bytes written into a TCP socket so far: acknowledged plus still queued (tcp_info and
// SIOCOUTQ). An ACK between the two reads can only make it smaller than the truth.
uint64_t bytes_written(int fd);

}  // namespace sluice::worker
