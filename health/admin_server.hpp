#pragma once
// The read-only admin listener, served by the health-checker process (never by a worker, so
// it cannot slow the data path): GET /metrics (Prometheus text), /status (JSON) and /
// (an HTML page that refreshes itself). Each client gets its own thread with read and write
// timeouts and a cap on how many are served at once, so a slow or silent client blocks no
// other.

#include <atomic>

#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::health {

class AdminServer {
public:
    // `listen_fd` is the listening socket the master opened for `admin`.
    AdminServer(int listen_fd, const Config& config, const SharedTable& table);

    // Starts the accept thread; it runs until the process exits.
    void start();

    static constexpr int kMaxClients = 32;

private:
    void accept_loop();
    void serve(int client);

    const int listen_fd_;
    const Config& config_;
    const SharedTable& table_;
    std::atomic<int> clients_{0};
};

}  // namespace sluice::health
