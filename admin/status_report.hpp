#pragma once
// What the admin listener shows: a snapshot of the shared table with the names from the
// config, rendered as Prometheus text, JSON, or a self-refreshing HTML page. Pure functions
// over the snapshot, so each format is testable without sockets. The per-address numbers
// come from kTargetStats: each renderer shows every entry of it, in its order.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/shared_table.hpp"
#include "common/table_counters.hpp"
#include "conf/config.hpp"

namespace sluice::admin {

struct AddressStatus {
    std::string target;   // as configured, e.g. "http-api-1:8001"
    std::string address;  // resolved "IP:PORT", or "" while the name does not resolve
    bool up = false;
    bool draining = false;  // admin: no new connections
    std::string reason;     // why it is (or last was) DOWN; "" if never
    int last_status = 0;    // HTTP status of the last check
    double check_seconds = 0;
    std::array<uint64_t, kTargetStats.size()> stats{};  // stats[i] is kTargetStats[i]
};

struct StatusSnapshot {
    std::string version;
    uint64_t generation = 0, reloads = 0, workers = 0;
    uint64_t connections = 0, rejected_no_target = 0, rejected_limit = 0;
    std::vector<AddressStatus> addresses;
};

// Reads `table` once; the open connections come from `ledger`, which counts them across
// generations (a reload's old workers still hold theirs).
StatusSnapshot take_snapshot(const Config& config, const SharedTable& table,
                             const LoadLedger& ledger);

std::string render_prometheus(const StatusSnapshot& s);
std::string render_json(const StatusSnapshot& s);
std::string render_html(const StatusSnapshot& s);

}  // namespace sluice::admin
