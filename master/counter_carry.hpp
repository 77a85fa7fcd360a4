#pragma once
// Counters across generations. A reload copies the counters into the new generation's table
// (Prometheus counters must not go back), but the old generation's workers go on serving
// their open connections for up to drain_timeout and count into the OLD table. The master
// keeps that table mapped until the generation's last process exits, then adds what was
// counted after the copy to the generation current at that moment: each count once, also
// when reloads are chained. Gauges (kTargetStats entries that do not carry over) are never
// added: the open connections are counted in the LoadLedger, which every generation shares;
// what a finished generation's dead workers left counted there is given back instead
// (give_back_shares).

#include <array>
#include <cstdint>
#include <vector>

#include "common/table_counters.hpp"
#include "conf/config.hpp"

namespace sluice {

// What a table's counters held at one moment: every kTableCounters entry and, per slot, every
// kTargetStats entry (gauges too, unused).
struct CounterMark {
    std::array<uint64_t, kTableCounters.size()> table{};
    std::vector<std::array<uint64_t, kTargetStats.size()>> slots;  // by SharedTable::slot_index
};

// Reads each counter of the configured targets' slots once. make_generation copies these
// very values, so that the mark and the copy agree to the count.
CounterMark mark_counters(const SharedTable& table);

// Adds to `to` what `from` counted since `mark` (now minus mark): the table-wide counters,
// and the per-address counters that carry over of each address of `from` that `to` still
// has (target by its canonical address, the address by value; others are dropped). Called by
// the master on a table that no process writes any more; `to` is live, so fetch_add.
void add_counts_since(const CounterMark& mark, const Config& from_config, const SharedTable& from,
                      const Config& to_config, SharedTable& to);

// Takes off `ledger` the open connections that `table`'s workers still have counted as
// theirs (worker_active): those of a worker killed, or stopped at drain_timeout, with
// connections open or connecting, whose successor never came. Called once, when the last
// process of `table`'s generation has exited, so no share changes any more.
void give_back_shares(const SharedTable& table, LoadLedger& ledger);

// The target of `config` with the canonical address `key`, or -1.
int find_target(const Config& config, const std::string& key);
std::string target_key(const TargetConfig& target);

}  // namespace sluice
