#include "worker/worker.hpp"

#include <signal.h>

#include "common/log.hpp"
#include "worker/acceptor_pool.hpp"

namespace sluice::worker {

int run_worker(const Config& config, SharedTable& table, int listen_fd, size_t max_connections) {
    PoolLimits limits;
    limits.max_threads = max_connections;
    AcceptorPool pool(listen_fd, limits, [&config, &table](int client, ThreadBuffers& buffers) {
        serve_connection(client, config, table, buffers);
    });
    pool.start();

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGQUIT);
    int signal_number = 0;
    while (sigwait(&stop, &signal_number) != 0) {
    }
    pool.stop_accepting();
    if (pool.active() > 0)
        LOG_INFO("stopping with %zu connection(s) still open", pool.active());
    return 0;
}

}  // namespace sluice::worker
