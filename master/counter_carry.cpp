#include "master/counter_carry.hpp"

#include <algorithm>

namespace sluice {
namespace {

// The slot of target `t` in `table` that holds `address`, or -1.
int find_address(const SharedTable& table, size_t t, const net::Endpoint& address) {
    const size_t count =
        std::min<size_t>(table.groups[t].address_count.load(), kAddressesPerTarget);
    for (size_t a = 0; a < count; ++a) {
        net::Endpoint held;
        if (table.slot(t, a).load_address(held) && held == address)
            return static_cast<int>(SharedTable::slot_index(t, a));
    }
    return -1;
}

void add_slot_counts(const TargetSlot& from, const std::array<uint64_t, kTargetStats.size()>& mark,
                     TargetSlot& to) {
    for (size_t i = 0; i < kTargetStats.size(); ++i) {
        if (kTargetStats[i].carry != Carry::always) continue;
        const uint64_t added = (from.*kTargetStats[i].field).load() - mark[i];
        if (added != 0) (to.*kTargetStats[i].field).fetch_add(added, std::memory_order_relaxed);
    }
}

}  // namespace

std::string target_key(const TargetConfig& target) { return target.host_port.canonical(); }

int find_target(const Config& config, const std::string& key) {
    for (size_t i = 0; i < config.targets.size(); ++i) {
        if (target_key(config.targets[i]) == key) return static_cast<int>(i);
    }
    return -1;
}

CounterMark mark_counters(const SharedTable& table) {
    CounterMark mark;
    for (size_t i = 0; i < kTableCounters.size(); ++i)
        mark.table[i] = (table.*kTableCounters[i]).load();
    const size_t targets = std::min<size_t>(table.target_count.load(), kMaxTargets);
    mark.slots.resize(targets * kAddressesPerTarget);
    for (size_t s = 0; s < mark.slots.size(); ++s) {
        for (size_t i = 0; i < kTargetStats.size(); ++i) {
            if (kTargetStats[i].field != nullptr)  // the open connections are in the ledger
                mark.slots[s][i] = (table.slots[s].*kTargetStats[i].field).load();
        }
    }
    return mark;
}

void add_counts_since(const CounterMark& mark, const Config& from_config, const SharedTable& from,
                      const Config& to_config, SharedTable& to) {
    for (size_t i = 0; i < kTableCounters.size(); ++i) {
        const uint64_t added = (from.*kTableCounters[i]).load() - mark.table[i];
        if (added != 0) (to.*kTableCounters[i]).fetch_add(added, std::memory_order_relaxed);
    }
    const size_t targets =
        std::min(from_config.targets.size(), mark.slots.size() / kAddressesPerTarget);
    for (size_t t = 0; t < targets; ++t) {
        const int to_target = find_target(to_config, target_key(from_config.targets[t]));
        if (to_target < 0) continue;
        for (size_t a = 0; a < kAddressesPerTarget; ++a) {
            net::Endpoint address;
            if (!from.slot(t, a).load_address(address)) continue;
            const int to_slot = find_address(to, static_cast<size_t>(to_target), address);
            if (to_slot >= 0)
                add_slot_counts(from.slot(t, a), mark.slots[SharedTable::slot_index(t, a)],
                                to.slots[to_slot]);
        }
    }
}

void give_back_shares(const SharedTable& table, LoadLedger& ledger) {
    const size_t slots =
        std::min<size_t>(table.target_count.load(), kMaxTargets) * kAddressesPerTarget;
    for (size_t s = 0; s < slots; ++s) {
        uint64_t left = 0;
        for (const auto& worker : table.worker_active) left += worker[s].load();
        if (left != 0) ledger.active(table, s).fetch_sub(left, std::memory_order_relaxed);
    }
}

}  // namespace sluice
