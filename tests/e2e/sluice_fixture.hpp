#pragma once
// A running sluice in front of spells-api backends, all on free loopback ports, with a short
// health interval; torn down (every process stopped) at the end of each test.

#include <gtest/gtest.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

namespace sluice::test {

inline constexpr auto kHealthInterval = 200ms;
inline constexpr auto kHealthTimeout =
    1000ms;  // generous: sanitizer builds on 2 busy cores are slow

struct Backend {
    std::string host = "127.0.0.1";
    bool in_config = true;  // listed as a target by config_text()
    std::string name;
    uint16_t port = 0;
    std::unique_ptr<Process> process;
    // While stopped: a bound, non-listening socket on the port, so that connects to it are
    // refused and no other test running in parallel can take the port meanwhile.
    int port_hold = -1;
};

class SluiceTest : public ::testing::Test {
protected:
    // Stops sluice and fails the test if a sanitizer (in a sanitizer build) reported
    // anything in its log: its children exit with _exit(), so a report would not show
    // in their exit codes.
    void TearDown() override;

    // Starts `count` backends named api-1..api-N and waits until each answers /healthz.
    void start_backends(int count);
    void start_backend(Backend& backend);
    void stop_backend(Backend& backend);  // SIGKILL; the port stays reserved (port_hold)

    // The config text (the seed's shape, short intervals): `extra_top_`, then the backends
    // listed in `only` (all when empty), then `extra_targets_`.
    std::string config_text(const std::vector<size_t>& only = {}) const;
    // Rewrites the config file, sends SIGHUP and waits until the reload is logged as done
    // (or as failed, when `expect_failure`).
    void reload(const std::string& text, bool expect_failure = false);
    // How often `needle` occurs in sluice's log so far.
    int log_count(const std::string& needle) const;
    // Starts sluice on a free port with `workers` workers; waits until it serves a request.
    void start_sluice(int workers);
    // The same inside a private mount namespace where /etc/hosts is the file `hosts` (kept
    // up to date by rewriting it in place) and names resolve from files only: a resolver
    // the test controls. Needs root, as CI runs.
    std::string start_sluice_with_hosts(int workers, const std::string& hosts);

    HttpReply get(const std::string& path = "/api/spells") {
        return http_request(port_, "GET", path);
    }
    // Sends `n` sequential requests; how many each instance served ("" for failures).
    std::map<std::string, int> spread(int n);

    TempDir dir_;
    std::vector<Backend> backends_;
    std::unique_ptr<Process> sluice_;
    uint16_t port_ = 0;
    std::string config_path_;
    std::string listen_host_ = "127.0.0.1";  // "[::1]" for IPv6
    std::string extra_top_;                  // more top-level keys
    std::chrono::milliseconds interval_ = kHealthInterval;
    std::string extra_targets_;         // more [[targets]] tables
    std::vector<std::string> wrapper_;  // a command that runs sluice (e.g. in a namespace)
};

}  // namespace sluice::test
