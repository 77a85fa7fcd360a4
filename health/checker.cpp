#include "health/checker.hpp"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "common/log.hpp"
#include "health/probe.hpp"

namespace sluice::health {
namespace {

using Clock = std::chrono::steady_clock;

// Logs the seed's "Healthy targets: N" line whenever the number of healthy targets changes.
class HealthyCountReporter {
public:
    explicit HealthyCountReporter(SharedTable& table) : table_(table) {}

    void report() {
        std::lock_guard lock(mutex_);  // process-local: orders the lines of checker threads
        const uint32_t n = table_.target_count.load(std::memory_order_relaxed);
        int healthy = 0;
        for (uint32_t i = 0; i < n; ++i)
            healthy += table_.targets[i].up.load(std::memory_order_relaxed) != 0;
        if (healthy == last_) return;
        last_ = healthy;
        LOG_INFO("Healthy targets: %d", healthy);
    }

private:
    SharedTable& table_;
    std::mutex mutex_;
    int last_ = -1;
};

// Publishes one check's outcome into the slot, logging a line when the state flips.
void publish(const TargetConfig& target, TargetSlot& slot, const net::Endpoint& address,
             const ProbeResult& result, const std::string& detail) {
    slot.last_status.store(static_cast<uint32_t>(result.status), std::memory_order_relaxed);
    const bool was_up = slot.up.load(std::memory_order_relaxed) != 0;
    // The reason is written before the state so a reader that sees DOWN sees why.
    slot.reason.store(static_cast<uint32_t>(result.reason), std::memory_order_release);
    slot.up.store(result.healthy ? 1 : 0, std::memory_order_release);
    if (was_up == result.healthy) return;
    if (result.healthy) {
        LOG_INFO("target %s UP (%s, %s)", target.address.c_str(), address.to_string().c_str(),
                 result.describe().c_str());
    } else {
        LOG_WARN("target %s DOWN: %s", target.address.c_str(),
                 detail.empty() ? result.describe().c_str() : detail.c_str());
    }
}

// One target, forever: resolve, probe, publish, sleep until the next tick.
void check_loop(const Config& config, const TargetConfig& target, TargetSlot& slot,
                HealthyCountReporter& reporter) {
    net::Endpoint current;
    slot.load_address(current);
    auto next = Clock::now();
    for (;;) {
        std::string resolve_error;
        const auto addresses = net::resolve(target.host_port, resolve_error);
        ProbeResult result;
        std::string detail;
        if (addresses.empty()) {
            result.reason = DownReason::unresolved;
            detail = "unresolved (" + resolve_error + ")";
        } else {
            // Keep the address in use while the name still resolves to it.
            bool still_listed = false;
            for (const auto& a : addresses) still_listed |= current.valid() && a == current;
            if (!still_listed) {
                if (current.valid())
                    LOG_INFO("target %s address changed from %s to %s", target.address.c_str(),
                             current.to_string().c_str(), addresses.front().to_string().c_str());
                current = addresses.front();
                slot.store_address(current);
            }
            result = probe(current, target.address, target.health_check_endpoint,
                           config.health_check.timeout);
            if (!result.healthy) detail = result.describe() + " (" + current.to_string() + ")";
        }
        publish(target, slot, current, result, detail);
        reporter.report();

        next += config.health_check.interval;
        const auto now = Clock::now();
        if (next < now) next = now;  // a slow round does not cause a burst of catch-up checks
        std::this_thread::sleep_until(next);
    }
}

}  // namespace

int run_checker(const Config& config, SharedTable& table) {
    HealthyCountReporter reporter(table);
    reporter.report();  // the count the table starts with
    for (size_t i = 0; i < config.targets.size(); ++i) {
        std::thread(check_loop, std::cref(config), std::cref(config.targets[i]),
                    std::ref(table.targets[i]), std::ref(reporter))
            .detach();
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGQUIT);
    int signal_number = 0;
    while (sigwait(&stop, &signal_number) != 0) {
    }
    // The checker holds nothing that outlives it: checks in flight are simply abandoned.
    return 0;
}

}  // namespace sluice::health
