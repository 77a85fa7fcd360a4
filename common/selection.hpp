#pragma once
// Round robin over the healthy targets, exact across every worker process: one shared
// counter, fetch_add(1) per connection, the ticket modulo the number of healthy targets
// (the seed's rule). Reads the table without any lock and allocates nothing.

#include <cstddef>
#include <cstdint>

#include "common/shared_table.hpp"

namespace sluice {

// The healthy targets seen at one moment, in slot order, and the ticket that orders them.
struct Candidates {
    uint16_t index[kMaxSlots];  // slot indices
    size_t count = 0;
    uint64_t ticket = 0;

    // The slot to try at the `attempt`-th try (0 first), or -1 once every candidate was tried.
    int at(size_t attempt) const {
        if (attempt >= count) return -1;
        return index[(ticket + attempt) % count];
    }
};

// Fills `out` with the healthy slots of `table` (every address of every target, in order) and, if there is at least one, takes a
// ticket from the shared counter (no ticket is used when none is healthy).
void take_candidates(SharedTable& table, Candidates& out);

}  // namespace sluice
