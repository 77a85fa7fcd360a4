#pragma once
// A worker process: accepts on the listening socket the master opened and serves each
// connection on its own blocking thread.

#include <cstddef>

#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::worker {

// Runs until SIGTERM, SIGINT or SIGQUIT (which the caller left blocked), then stops
// accepting and returns the process exit code. `max_connections` caps the connections this
// process serves at once (sized by the master from the open-file limit).
int run_worker(const Config& config, SharedTable& table, int listen_fd, size_t max_connections);

}  // namespace sluice::worker
