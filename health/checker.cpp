#include "health/checker.hpp"

#include <signal.h>

#include <thread>

#include "health/target_checker.hpp"

namespace sluice::health {

int run_checker(const Config& config, SharedTable& table) {
    // The detached threads below run until the process exits (with _exit, right after this
    // returns), so what they use is never destroyed: allocated once and left to the exit.
    auto* reporter = new HealthyCountReporter(table);
    reporter->report();  // the count the table starts with
    for (size_t i = 0; i < config.targets.size(); ++i) {
        std::thread([&config, &table, reporter, i] {
            TargetChecker(config.targets[i], i, table, *reporter, real_deps()).run();
        }).detach();
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
