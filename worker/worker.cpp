#include "worker/worker.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "common/log.hpp"
#include "worker/acceptor_pool.hpp"

namespace sluice::worker {

int run_worker(const Config& config, SharedTable& table, LoadLedger& ledger, int listen_fd,
               size_t max_connections, size_t worker_slot) {
    // The pool's threads are detached and may still be finishing (or, after SIGQUIT,
    // serving) when this returns and the process exits with _exit(): the context and the
    // pool are therefore never destroyed, only left to the exit.
    const auto* context = new WorkerContext{config, table, ledger, worker_slot};
    repair_active_counts(*context);
    PoolLimits limits;
    limits.max_threads = max_connections;
    auto& pool =
        *new AcceptorPool(listen_fd, limits,
                          [context](int client, const net::Endpoint& peer, ThreadBuffers& buffers) {
                              serve_connection(client, peer, *context, buffers);
                          });
    pool.start();
    // Tells the master this worker serves (a reload retires the old generation only then).
    table.worker_accepting[worker_slot].store(1);
    LOG_DEBUG("accepting: up to %zu connections at once", max_connections);

    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGQUIT}) sigaddset(&signals, s);
    int signal_number = 0;
    while (sigwait(&signals, &signal_number) != 0) {
    }
    if (signal_number == SIGQUIT) return 0;  // at once: open connections are cut

    // Graceful: stop accepting, give the listening socket back (the master and the next
    // generation keep it open), and let the connections being served finish. The master
    // sends SIGQUIT when its deadline (drain_timeout or shutdown_timeout) passes.
    pool.stop_accepting();
    ::close(listen_fd);
    LOG_NOTICE("%s: stopped accepting; %zu connection(s) to finish", strsignal(signal_number),
               pool.active());
    const timespec tick{0, 20'000'000};
    while (pool.active() > 0) {
        if (sigtimedwait(&signals, nullptr, &tick) == SIGQUIT) {
            LOG_WARN("SIGQUIT: exiting with %zu connection(s) still open", pool.active());
            return 0;
        }
    }
    LOG_NOTICE("all connections finished");
    return 0;
}

}  // namespace sluice::worker
