#include "master/load_ledger.hpp"

#include <algorithm>

namespace sluice {

std::optional<uint32_t> LedgerBook::free_group() const {
    const LoadLedger& l = ledger();
    for (uint32_t g = 0; g < kLedgerGroups; ++g) {
        if (holders_[g] != 0) continue;
        const auto& active = l.groups[g].active;
        if (std::all_of(std::begin(active), std::end(active),
                        [](const std::atomic<uint64_t>& n) { return n.load() == 0; }))
            return g;
    }
    return std::nullopt;
}

}  // namespace sluice
