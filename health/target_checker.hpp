#pragma once
// The checker of one configured target: each round it resolves the target's name, gives each
// address a slot of the target's group, probes every address at once and publishes each
// verdict in the shared table. What touches the outside world (the resolver, the probe, the
// clock of up_since_ms) comes in as CheckerDeps, so that a test drives round() on a table in
// plain memory with a scripted resolver, probe and clock; the process wires in the real ones.

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/shared_table.hpp"
#include "conf/config.hpp"
#include "health/probe.hpp"
#include "health/tracker.hpp"

namespace sluice::health {

// What a TargetChecker asks of the world. `probe` is called from several threads at once
// (one per address of a round), so it must be safe to call concurrently.
struct CheckerDeps {
    // net::resolve's contract: the addresses, or an empty vector and the reason in `error`.
    std::function<std::vector<net::Endpoint>(const net::HostPort&, std::string& error)> resolve;
    std::function<ProbeResult(const net::Endpoint&, const TargetConfig&)> probe;
    // CLOCK_MONOTONIC ms, the clock every worker reads up_since_ms against.
    std::function<int64_t()> now_ms;
};

// net::resolve, health::probe and monotonic_ms: what the checker process uses.
CheckerDeps real_deps();

// Logs the seed's "Healthy targets: N" line whenever the number of healthy addresses changes.
// Shared by the checkers of every target; thread-safe.
class HealthyCountReporter {
public:
    explicit HealthyCountReporter(SharedTable& table) : table_(table) {}
    void report();

private:
    SharedTable& table_;
    std::mutex mutex_;
    int last_ = -1;
};

// Checks one configured target: the sole writer of its group's addresses and verdicts.
// Not thread-safe: one thread calls round() (or run()).
class TargetChecker {
public:
    // Picks up what the master (or the previous generation) left in group `index` of `table`.
    // `target`, `table` and `reporter` must outlive the checker.
    TargetChecker(const TargetConfig& target, size_t index, SharedTable& table,
                  HealthyCountReporter& reporter, CheckerDeps deps);

    // Calls round() forever, every interval +-10 %, so that many targets do not fire at once.
    // Calls `known` once the target's state is known: at once if the table already had its
    // addresses (the previous generation's state, or the master's start-up resolution; the
    // first round then comes within a tenth of the interval), else after a first round run at
    // once (a target new to a reload is resolved and checked before the generation serves).
    [[noreturn]] void run(const std::function<void()>& known);

    // One check of every address: resolve, reconcile the slots, probe at once, publish and
    // log the flips, then let the reporter log the healthy count if it changed.
    void round();

private:
    struct AddressState {
        net::Endpoint address;  // invalid: the slot is free
        HealthTracker tracker{1, 1};
        uint64_t passive_seen = 0;
        bool local_failure_logged = false;  // the last check failed for a reason of our own
    };

    int rise() const { return target_.health_check.rise; }
    int fall() const { return target_.health_check.fall; }
    TargetSlot& slot(size_t a) { return table_.slot(index_, a); }

    void adopt(size_t a);
    void mark_unresolved(const std::string& error);
    void reconcile(const std::vector<net::Endpoint>& resolved);
    void free_slot(size_t a);
    void add_address(const net::Endpoint& e);
    void probe_all(std::array<ProbeResult, kAddressesPerTarget>& results,
                   std::array<uint64_t, kAddressesPerTarget>& passive_before);
    void publish(size_t a, ProbeResult result, uint64_t passive_before, const std::string& detail);
    void log_flip(size_t a, const ProbeResult& result, const std::string& detail) const;

    const TargetConfig& target_;
    const size_t index_;
    SharedTable& table_;
    HealthyCountReporter& reporter_;
    const CheckerDeps deps_;
    std::array<AddressState, kAddressesPerTarget> states_;
    size_t count_ = 0;
    bool logged_unresolved_ = false;
};

}  // namespace sluice::health
