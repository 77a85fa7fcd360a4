#pragma once
// The master's side of the load ledger (LoadLedger, common/shared_table.hpp): the one
// mapping every generation's processes count open connections in, made once before the first
// fork, and which ledger group each generation's targets use.
//
// A target carried over by a reload keeps its group, so the old generation's open
// connections still count against the cap the new generation's workers check. A new target
// takes a group that no live generation holds and that counts no connection. A generation
// holds its groups until it is destroyed (its last process has exited).

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "common/shared_segment.hpp"

namespace sluice {

class LedgerBook {
public:
    LedgerBook() = default;  // maps a zeroed ledger; throws on failure
    LedgerBook(const LedgerBook&) = delete;
    LedgerBook& operator=(const LedgerBook&) = delete;

    LoadLedger& ledger() { return segment_.ledger(); }
    const LoadLedger& ledger() const { return segment_.ledger(); }

    // A group no generation holds and whose every count is 0; nullopt when there is none
    // (more distinct targets across the live generations than kLedgerGroups).
    std::optional<uint32_t> free_group() const;
    // The group a live generation holds for the target `key` (target_key()), if any: a
    // target dropped by one reload and added back by the next, while the generation that
    // had it still drains, gets that group again, so its cap counts those connections.
    std::optional<uint32_t> held_group(const std::string& key) const;
    // A generation starts using `group` for the target `key` / has ended and no longer does.
    void hold(uint32_t group, const std::string& key);
    void release(uint32_t group) { --holders_[group]; }
    uint32_t holders(uint32_t group) const { return holders_[group]; }

private:
    LedgerSegment segment_;
    std::array<uint32_t, kLedgerGroups> holders_{};  // live generations using each group
    std::array<std::string, kLedgerGroups> keys_;    // the target each held group counts
};

}  // namespace sluice
