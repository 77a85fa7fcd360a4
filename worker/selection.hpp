#pragma once
// Choosing the target of a new connection, from the shared table, without any lock and
// without allocating (except when the set of healthy targets or their weights change, which
// rebuilds a per-thread schedule).
//
//   round_robin        one counter shared by every worker (fetch_add(1) per connection), so
//                      the rotation is exact across processes; with unequal weights the
//                      ticket indexes nginx's smooth weighted round-robin sequence
//   least_connections  the fewest open connections (the load ledger's counts, so across
//                      every worker and generation) per unit of weight; ties broken by the
//                      rotation
//   random_two         two random candidates, the one with fewer active connections per
//                      unit of weight (power of two choices)
//
// While the health checker is silent (checker_silent: none has run for a while), a DOWN
// mark is distrusted: addresses marked DOWN are candidates too, in the same order, so a
// target a worker marked DOWN passively is used again (a failed connect moves on as usual).
//
// Slow start scales a target's weight by the share of its slow_start elapsed since it came
// back UP (at least 1/16). An address that has been UP since start-up (up_since_ms 0: the
// checker never flipped it) gets its full weight at once.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice {

// Smooth weighted round robin (as nginx spreads weights without bursts): fills `out` with
// sum(weights) picks, each index i appearing weights[i] times. Pure.
void smooth_weighted_schedule(const std::vector<uint32_t>& weights, std::vector<uint16_t>& out);

// The targets to try for one connection. Lives on the connection thread's stack: the
// small fields come first and each candidate's slot and weight sit together, so a few
// candidates touch one page of it, not the whole array.
struct Candidates {
    size_t count = 0;
    size_t chosen = 0;  // position in entry[] of the algorithm's choice
    uint64_t ticket = 0;
    struct Entry {
        uint16_t slot;    // an eligible slot (healthy, target not draining), in slot order
        uint32_t weight;  // its effective weight
    } entry[kMaxSlots];

    // The slot for the `attempt`-th try: the choice first, then every other candidate once,
    // in slot order; -1 when all were tried.
    int at(size_t attempt) const {
        if (attempt >= count) return -1;
        return entry[(chosen + attempt) % count].slot;
    }
};

// One per connection thread: the algorithm, each target's weight and slow start, and what
// the thread caches between connections.
class Picker {
public:
    explicit Picker(const Config& config);

    // Fills `out` for a new connection (takes a ticket from the shared counter when there is
    // a candidate). `ledger` gives the open connections (least_connections, random_two);
    // `now_ms` is CLOCK_MONOTONIC in milliseconds (for slow start).
    void pick(SharedTable& table, const LoadLedger& ledger, int64_t now_ms, Candidates& out);

private:
    size_t weighted_choice(const Candidates& c);
    static size_t least_loaded(const SharedTable& table, const LoadLedger& ledger,
                               const Candidates& c, size_t from, size_t n);

    Algorithm algorithm_;
    std::vector<uint32_t> weights_;       // per configured target
    std::vector<int64_t> slow_start_ms_;  // per configured target
    // The weighted schedule of the last candidate set seen (positions into entry[]).
    std::vector<uint16_t> cached_slots_;
    std::vector<uint32_t> cached_weights_;
    std::vector<uint16_t> schedule_;
    uint64_t random_state_;
};

}  // namespace sluice
