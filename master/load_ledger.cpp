#include "master/load_ledger.hpp"

#include <algorithm>

namespace sluice {

std::optional<uint32_t> LedgerBook::held_group(const std::string& key) const {
    for (uint32_t g = 0; g < kLedgerGroups; ++g) {
        if (holders_[g] != 0 && keys_[g] == key) return g;
    }
    return std::nullopt;
}

void LedgerBook::hold(uint32_t group, const std::string& key) {
    ++holders_[group];
    keys_[group] = key;
}

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
