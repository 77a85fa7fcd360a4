#include "common/selection.hpp"

#include <algorithm>

namespace sluice {

void take_candidates(SharedTable& table, Candidates& out) {
    const size_t n = std::min<size_t>(table.target_count.load(std::memory_order_acquire),
                                      kMaxTargets);
    out.count = 0;
    for (size_t t = 0; t < n; ++t) {
        const size_t addresses = std::min<size_t>(
            table.groups[t].address_count.load(std::memory_order_acquire), kAddressesPerTarget);
        for (size_t a = 0; a < addresses; ++a) {
            const size_t i = SharedTable::slot_index(t, a);
            if (table.slots[i].up.load(std::memory_order_acquire) != 0)
                out.index[out.count++] = static_cast<uint16_t>(i);
        }
    }
    out.ticket = out.count == 0 ? 0 : table.round_robin.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace sluice
