#pragma once
// The configuration as plain structs: what the loader produces and every role reads.
// No toml types past conf/loader.cpp. Defaults here are the documented defaults
// (docs/configuration.md has one entry per key).

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "common/net.hpp"

namespace sluice {

using Millis = std::chrono::milliseconds;

// HTTP statuses a health check accepts, as inclusive ranges ("2xx" is 200-299).
struct StatusRange {
    int low = 200;
    int high = 299;
    bool operator==(const StatusRange&) const = default;
};

struct HealthCheckConfig {
    Millis interval{5000};
    Millis timeout{1000};
    int rise = 1;  // consecutive successes that bring a DOWN target UP
    int fall = 1;  // consecutive failures that take an UP target DOWN
    std::vector<StatusRange> expect_status{StatusRange{}};

    bool accepts(int status) const {
        for (const auto& r : expect_status) {
            if (status >= r.low && status <= r.high) return true;
        }
        return false;
    }
};

enum class Algorithm { round_robin, least_connections, random_two };
enum class NoTargetReply { http_503, close };
enum class ProxyProtocol { none, v1, v2 };
// How bytes move between a client and its target: `automatic` is the kernel relay where it
// loads (each connection handed over after its first exchange), else the user relay.
enum class RelayMode { automatic, kernel, user };

struct TargetConfig {
    std::string address;                // as written, e.g. "http-api-1:8001"; the target's name
    net::HostPort host_port;            // parsed from `address`
    std::string health_check_endpoint;  // empty: the check is a plain TCP connect
    HealthCheckConfig health_check;     // the global [health_check] with this target's overrides
    uint32_t weight = 1;                // share of new connections, relative to the others
    uint32_t max_connections = 0;       // per address; 0: no cap
    ProxyProtocol send_proxy = ProxyProtocol::none;
    Millis slow_start{0};  // ramp after coming back UP; 0: none
    int line = 0;          // where the target is defined, for messages
};

struct Config {
    std::string path;  // the file it was read from
    net::HostPort listen{"0.0.0.0", 80};
    std::optional<unsigned> workers;  // unset: the command line or the number of CPUs decides
    Millis connect_timeout{2000};
    Algorithm algorithm = Algorithm::round_robin;
    NoTargetReply on_no_target = NoTargetReply::http_503;
    Millis queue_timeout{0};      // wait for a target below its max_connections; 0: do not wait
    Millis slow_start{0};         // the default of every target's slow_start
    Millis idle_timeout{600000};  // a connection with no byte either way this long ends; 0: never
    RelayMode relay = RelayMode::automatic;
    std::optional<uint64_t> max_connections;  // across all workers; unset: the open-file limit
    Millis drain_timeout{30000};              // old workers finish their connections after a reload
    Millis shutdown_timeout{10000};           // connections finish after SIGTERM/SIGINT
    // Who the workers and the checker run as (the master keeps its own identity, to bind a
    // new privileged listen address on reload). Unset: no change.
    std::optional<uid_t> user;
    std::optional<gid_t> group;  // unset with `user` set: the user's primary group
    std::string user_name;
    HealthCheckConfig health_check;
    std::vector<TargetConfig> targets;
    std::optional<net::HostPort> admin;  // the admin HTTP listener; none when unset
    bool admin_allow_remote = false;     // allow a non-loopback admin address
    // admin_token_file, resolved against the config file's directory, and the token it holds
    // (read at load, so a reload re-reads it): required as "Authorization: Bearer TOKEN" for
    // admin POSTs, and for every admin request with admin_allow_remote. Empty: no token.
    std::string admin_token_file;
    std::string admin_token;
    log::Level log_level = log::Level::info;  // info adds one line per connection
};

// A config that cannot be used. what() is ready to print: "FILE:LINE: what is wrong", then
// the offending line of the file.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace sluice
