#pragma once
// One health check of one target address: connect, and for an HTTP check send
// `GET <path>` and read the status line, all within one deadline. Blocking; each target is
// probed on its own thread so a target that hangs delays no other.

#include <string>

#include "common/net.hpp"
#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::health {

struct ProbeResult {
    bool healthy = false;
    DownReason reason = DownReason::none;
    int status = 0;  // HTTP status, 0 when none was read
    // Not 0: the check could not be made for a reason of the checker's own (out of
    // descriptors, memory or local ports: classify_errno() does not blame the target), so it
    // says nothing about the target and must not change its verdict.
    int local_errno = 0;
    std::string describe() const;  // "connection refused", "status 503", ...
};

// Checks `address` for `target`: a plain TCP connect when the target has no
// health_check_endpoint, else GET that path with `Host: <target.address>`, healthy when
// the status is one of `target.health_check.expect_status`. Within health_check.timeout.
ProbeResult probe(const net::Endpoint& address, const TargetConfig& target);

}  // namespace sluice::health
