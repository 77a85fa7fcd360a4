#pragma once
// The one list of the shared table's traffic counters (as HAProxy's stat_cols_px[]). The copy
// on reload, the carry-over of what a draining generation adds, the admin snapshot and the
// Prometheus, JSON and HTML renderers all walk these lists, so a new per-address counter costs
// one field in TargetSlot and one line in kTargetStats. Types and constexpr data only.

#include <array>
#include <atomic>
#include <cstdint>

#include "common/shared_table.hpp"

namespace sluice {

enum class StatType { counter, gauge };

// What a reload does with a per-address number.
enum class Carry {
    none,       // a gauge (open connections): kept in the LoadLedger, which every
                // generation shares, so there is nothing to copy or carry
    at_switch,  // copied when the new generation starts; what the draining one adds later is
                // not carried, because the new checker reads growth of it as a new failure of
                // its own workers (passive health) and would mark a healthy target DOWN
    always,     // copied at the switch, and what the draining generation adds afterwards is
                // added when its last process exits (master/counter_carry.cpp)
};

// One per-address number of TargetSlot.
struct TargetStat {
    // nullptr for the open connections, which live in the LoadLedger, not in the slot (they
    // span generations); read every entry with stat_value().
    std::atomic<uint64_t> TargetSlot::*field;
    StatType type;
    // Counters go on across a reload (Prometheus counters must not reset); see Carry.
    Carry carry;
    const char* metric;  // Prometheus family; entries with the same family must be adjacent
    const char* label;   // an extra Prometheus label, e.g. direction="to_target", or ""
    const char* help;    // Prometheus HELP, the same on every entry of a family
    const char* json;    // key in each /status target
    const char* column;  // heading on the admin page
};

inline constexpr std::array kTargetStats = {
    TargetStat{nullptr, StatType::gauge, Carry::none, "sluice_target_active_connections", "",
               "Connections open to the address.", "active_connections", "active"},
    TargetStat{&TargetSlot::connections, StatType::counter, Carry::always,
               "sluice_target_connections_total", "", "Connections made to the address.",
               "connections", "connections"},
    TargetStat{&TargetSlot::passive_failures, StatType::counter, Carry::at_switch,
               "sluice_target_connect_failures_total", "",
               "Connects to the address that failed (refused, unreachable, timeout).",
               "connect_failures", "connect failures"},
    TargetStat{&TargetSlot::bytes_to_target, StatType::counter, Carry::always,
               "sluice_target_bytes_total", "direction=\"to_target\"",
               "Bytes relayed, by direction.", "bytes_to_target", "bytes to target"},
    TargetStat{&TargetSlot::bytes_to_client, StatType::counter, Carry::always,
               "sluice_target_bytes_total", "direction=\"to_client\"",
               "Bytes relayed, by direction.", "bytes_to_client", "bytes to client"},
};

// The value of `stat` for slot `index` (SharedTable::slot_index) of `table`.
inline uint64_t stat_value(const TargetStat& stat, const SharedTable& table,
                           const LoadLedger& ledger, size_t index) {
    if (stat.field == nullptr) return ledger.active(table, index).load();
    return (table.slots[index].*stat.field).load();
}

// The whole-balancer counters that every worker adds to: carried over on reload like the
// per-address ones. (Rendered by name in admin/status_report.cpp: their shapes differ.)
inline constexpr std::array kTableCounters = {
    &SharedTable::connections,
    &SharedTable::rejected_no_target,
    &SharedTable::rejected_limit,
};

}  // namespace sluice
