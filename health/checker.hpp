#pragma once
// The health-checker process: resolves every target's name and checks it, each on its own
// thread, at start and then every interval, and publishes the result in the shared table.
// It is the only writer of each slot's health and address.

#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::health {

// Runs until SIGTERM, SIGINT or SIGQUIT (which the caller left blocked), then returns the
// process exit code.
int run_checker(const Config& config, SharedTable& table);

}  // namespace sluice::health
