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
    std::string describe() const;  // "connection refused", "status 503", ...
};

// `host_header` is the target as configured ("http-api-1:8001"); `path` empty means a
// plain TCP connect check.
ProbeResult probe(const net::Endpoint& address, const std::string& host_header,
                  const std::string& path, Millis timeout);

}  // namespace sluice::health
