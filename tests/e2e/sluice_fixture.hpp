#pragma once
// A running sluice in front of spells-api backends, all on loopback, with a short health
// interval; torn down (every process stopped) at the end of each test. sluice listens on port
// 0 (and its admin listener too, when asked for) and the fixture reads the ports it was given
// from its log; the backends' ports are reserved for the test (reserve_port).

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
    // The port, reserved for the whole test (reserve_port): the backend binds it beside this
    // socket, and while it is stopped connects to the port are refused and no other test
    // running in parallel can take it.
    int port_hold = -1;
};

class SluiceTest : public ::testing::Test {
protected:
    // Stops sluice and fails the test if a sanitizer (in a sanitizer build) reported
    // anything in its log: its children exit with _exit(), so a report would not show
    // in their exit codes.
    void TearDown() override;
    // Skips the test when it is to run on the kernel relay and the machine cannot load it.
    void SetUp() override { SKIP_IF_NO_KERNEL_RELAY(); }

    // Starts `count` backends named api-1..api-N and waits until each answers /healthz.
    void start_backends(int count);
    // Adds a backend (not started) on `host`, at `port` or a port of the kernel's choice,
    // reserved for the test.
    Backend& add_backend(const std::string& name, const std::string& host = "127.0.0.1",
                         uint16_t port = 0);
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
    // Writes config_text() and starts sluice (listening on port 0) with `workers` workers;
    // waits until it serves a request.
    void start_sluice(int workers);
    // Starts sluice (through wrapper_) on the config file at config_path_ as it is, and
    // waits until its log names the port it listens on (port_) and, if the config has one,
    // its admin listener's (admin_port_). Does not wait for it to serve.
    void launch_sluice(int workers);
    // start_sluice() inside a private mount namespace where /etc/hosts is the file
    // dir_/hosts, written from `hosts` (rewrite it in place to change it), and names resolve
    // from files only: a resolver the test controls. Needs root, as CI runs: without it the
    // test is marked skipped and this returns false (the caller returns at once).
    [[nodiscard]] bool start_sluice_with_hosts(int workers, const std::string& hosts);

    HttpReply get(const std::string& path = "/api/spells") {
        return http_request(port_, "GET", path);
    }
    HttpReply admin(const std::string& path) { return http_request(admin_port_, "GET", path); }
    // The open fds of sluice's children, summed.
    long children_fds() const;
    // After a test's faults: expects sluice to be back to `children` children (workers and
    // the checker; waits for the old generations to go) whose fds are back to `base_fds` (as
    // children_fds() read them at a fresh start; idle pool threads hold none) and whose
    // threads are within the pool's idle cap (16 per worker) and 5 of its own per process.
    void expect_children_back_to(size_t children, long base_fds);
    // Sends `n` sequential requests; how many each instance served ("" for failures).
    std::map<std::string, int> spread(int n);

    TempDir dir_;
    std::vector<Backend> backends_;
    std::unique_ptr<Process> sluice_;
    uint16_t port_ = 0;  // the port sluice was given (it listens on port 0)
    std::string config_path_;
    std::string listen_host_ = "127.0.0.1";  // "[::1]" for IPv6
    bool with_admin_ = false;                // config_text() adds admin = "127.0.0.1:0"
    uint16_t admin_port_ = 0;                // the admin listener's port, when there is one
    std::string extra_top_;  // more top-level keys; a `relay` here overrides SLUICE_TEST_RELAY
    std::chrono::milliseconds interval_ = kHealthInterval;
    std::string extra_targets_;         // more [[targets]] tables
    std::vector<std::string> wrapper_;  // a command that runs sluice (e.g. in a namespace)
};

}  // namespace sluice::test
