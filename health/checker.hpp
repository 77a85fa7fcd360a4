#pragma once
// The health-checker process: resolves every target's name and checks it, each on its own
// thread, at start and then every interval, and publishes the result in the shared table.
// It is the only writer of each slot's health and address. Its main thread writes the
// table's heartbeat every kHeartbeatPeriodMs, and sets checker_ready once every target's
// state is known (its first round done, or taken over from the previous generation).

#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::health {

// Runs until SIGTERM, SIGINT or SIGQUIT (which the caller left blocked), then returns the
// process exit code.
int run_checker(const Config& config, SharedTable& table);

}  // namespace sluice::health
