#pragma once
// What the admin listener shows: a snapshot of the shared table with the names from the
// config, rendered as Prometheus text, JSON, or a self-refreshing HTML page. Pure functions
// over the snapshot, so each format is testable without sockets.

#include <cstdint>
#include <string>
#include <vector>

#include "common/shared_table.hpp"
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
    uint64_t active = 0, connections = 0, connect_failures = 0;
    uint64_t bytes_to_target = 0, bytes_to_client = 0;
};

struct StatusSnapshot {
    std::string version;
    uint64_t generation = 0, reloads = 0, workers = 0;
    uint64_t connections = 0, rejected_no_target = 0, rejected_limit = 0;
    std::vector<AddressStatus> addresses;
};

StatusSnapshot take_snapshot(const Config& config, const SharedTable& table);

std::string render_prometheus(const StatusSnapshot& s);
std::string render_json(const StatusSnapshot& s);
std::string render_html(const StatusSnapshot& s);

}  // namespace sluice::admin
