#pragma once
// Relays bytes between a client and a target in both directions on the calling thread,
// until both directions are finished. One thread per connection, poll() on both sockets:
// no heap allocation, the two buffers belong to the calling thread.
//
// Half-close: when one side ends its sending (EOF), the other side's write is shut down and
// the opposite direction keeps going. A reset or error on either side ends the connection
// at once, and the other side gets a reset too (so it learns the exchange was cut).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sluice::worker {

enum class RelayEnd {
    completed,     // both sides finished sending, all bytes delivered
    client_error,  // the client reset or failed
    target_error,  // the target reset or failed
    idle_timeout,  // no byte moved either way for the idle timeout
    handed_over,   // stopped for the kernel relay (RelayOptions::hand_over_after_exchange)
};

struct RelayResult {
    RelayEnd end = RelayEnd::completed;
    bool client_finished_first = true;  // completed: the client ended its sending first
    uint64_t bytes_to_target = 0;
    uint64_t bytes_to_client = 0;
};

// Shared counters the relay adds the bytes it moved to: at the end, and every MiB on the
// way, so that a long transfer shows progress. May be null.
struct ByteCounters {
    std::atomic<uint64_t>* to_target = nullptr;
    std::atomic<uint64_t>* to_client = nullptr;
};

struct RelayOptions {
    ByteCounters counters;
    // 0 (or less): no idle timeout. Any length is honoured, also past what one poll() can
    // wait (2^31 ms).
    std::chrono::milliseconds idle_timeout{};
    // Stop with RelayEnd::handed_over once the connection has carried one exchange (the
    // client speaks again after the target spoke: after an answer, or after a greeting) and every
    // byte read has been written, neither side having ended: the rest can go to the kernel relay.
    bool hand_over_after_exchange = false;
};

// Both sockets must be non-blocking. The caller still owns and closes them. After
// RelayEnd::handed_over, calling relay() again on the same pair goes on where it stopped.
RelayResult relay(int client, int target, char* buffer_to_target, char* buffer_to_client,
                  size_t buffer_size, const RelayOptions& options = {});

}  // namespace sluice::worker
