#include "health/checker.hpp"

#include <signal.h>

#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "health/target_checker.hpp"

namespace sluice::health {
namespace {

// Until every target's state is known the heartbeat loop looks more often, so that a
// reload's new generation is found ready soon after its checker's first round.
constexpr long kReadyPollNs = 20'000'000;

// What the checker threads share with the main thread. Allocated once and never destroyed:
// the detached threads run until the process ends with _exit().
struct CheckerState {
    explicit CheckerState(SharedTable& table) : reporter(table) {}
    HealthyCountReporter reporter;
    std::atomic<size_t> known{0};  // targets whose state is known (TargetChecker::run)
};

// Starts the checker thread of every target in `started` that has none yet. A thread that
// cannot start (out of tasks: RLIMIT_NPROC, pids.max) is logged and tried again on the next
// heartbeat: it is never fatal, and the other targets are checked meanwhile.
void start_missing(const Config& config, SharedTable& table, CheckerState& state,
                   std::vector<bool>& started) {
    for (size_t i = 0; i < config.targets.size(); ++i) {
        if (started[i]) continue;
        try {
            std::thread([&config, &table, &state, i] {
                TargetChecker(config.targets[i], i, table, state.reporter, real_deps())
                    .run([&state] { state.known.fetch_add(1); });
            }).detach();
            started[i] = true;
        } catch (const std::system_error& e) {
            LOG_WARN("cannot start the checker of target %s (%s); trying again",
                     config.targets[i].address.c_str(), e.what());
        }
    }
}

}  // namespace

int run_checker(const Config& config, SharedTable& table) {
    auto* state = new CheckerState(table);
    state->reporter.report();  // the count the table starts with
    std::vector<bool> started(config.targets.size(), false);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGQUIT);
    for (;;) {
        start_missing(config, table, *state, started);
        table.checker_heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed);
        const bool ready = state->known.load() >= config.targets.size();
        if (ready && table.checker_ready.load() == 0) table.checker_ready.store(1);
        const timespec tick{0, ready ? kHeartbeatPeriodMs * 1'000'000 : kReadyPollNs};
        // The checker holds nothing that outlives it: checks in flight are simply abandoned.
        if (sigtimedwait(&stop, nullptr, &tick) > 0) return 0;
    }
}

}  // namespace sluice::health
