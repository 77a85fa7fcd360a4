#pragma once
// A worker process: accepts on the listening socket the master opened and serves each
// connection on its own blocking thread.

#include <sys/types.h>

#include <cstddef>

#include "common/shared_table.hpp"
#include "conf/config.hpp"
#include "worker/kernel_relay.hpp"
#include "worker/open_connections.hpp"

namespace sluice::worker {

// Serves until a signal (which the caller left blocked). SIGTERM or SIGINT: stop accepting
// and return once every connection has finished, or, at the deadline, reset every one still
// open and log it with end=drain_timeout or end=shutdown_timeout (the StopReason the
// master's signal carries). The deadline is the master's SIGQUIT, or shutdown_timeout after
// the worker saw `master` (its parent) gone. SIGQUIT before any SIGTERM: the same cut at
// once. Returns the process exit code. `max_connections` caps the connections this process
// serves at once (sized by the master from the open-file limit). `worker_slot` (0-based) is
// this worker's number, stable across its respawns. `ledger` holds the open connections of
// every generation (for max_connections). `kernel_relay`: the kernel relay's maps, loaded by
// the master, when the config's `relay` may use them; null for the user relay.
int run_worker(const Config& config, SharedTable& table, LoadLedger& ledger, int listen_fd,
               size_t max_connections, size_t worker_slot, pid_t master,
               const KernelRelay* kernel_relay);

}  // namespace sluice::worker
