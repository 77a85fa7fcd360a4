#pragma once
// The two maps of the kernel relay's program (bpf/relay.bpf.c), as a connection's thread
// fills them. Inside worker/ only: kernel_relay.cpp and kernel_relay_load.cpp use it.

#include <cstdint>

namespace sluice::worker {

struct KernelRelayMaps {
    int peers;
    int relayed;

    // Makes `a` and `b` relay each other in the kernel: each becomes the other's peer, then
    // `a`, then `b`, is relayed, and bytes already queued on either are pushed through the
    // program in order. Returns 0, or the errno of the step that failed: then nothing is
    // left in the maps, unless `a` was relayed before `b` failed (`*a_was_relayed`): bytes
    // `a` received meanwhile may be on their way out of `b`, so the pair is left in the maps
    // for the caller to remove() once they are out (removing it first would drop them).
    int insert(int a, int b, bool* a_was_relayed = nullptr) const;
    // Takes both out of both maps (closing a socket does the same).
    void remove(int a, int b) const;
};

// A socket's cookie (SO_COOKIE): the key of its entries. 0 if it has none.
uint64_t socket_cookie(int fd);

}  // namespace sluice::worker
