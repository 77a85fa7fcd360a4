#pragma once
// The admin listener, served by the health-checker process (never by a worker, so it cannot
// slow the data path): GET /metrics (Prometheus text), /status (JSON) and / (an HTML page
// that refreshes itself); POST /targets/NAME/drain and /targets/NAME/enable from loopback
// clients only (a draining target gets no new connection and keeps its open ones). Each client gets
// its own thread with read and write timeouts and a cap on how many are served at once, so a slow
// or silent client blocks no other.

#include <atomic>

#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::admin {

class AdminServer {
public:
    // `listen_fd` is the listening socket the master opened for `admin`; `ledger` gives the
    // open connections the reports show (read only).
    AdminServer(int listen_fd, const Config& config, SharedTable& table, const LoadLedger& ledger);

    // Starts the accept thread; it runs until the process exits.
    void start();

    static constexpr int kMaxClients = 32;

private:
    void accept_loop();
    void serve(int client);
    // POST /targets/NAME/drain|enable: the reply to send.
    std::string set_draining(const std::string& path, bool from_loopback);

    const int listen_fd_;
    const Config& config_;
    SharedTable& table_;  // writes only TargetGroup::draining
    const LoadLedger& ledger_;
    std::atomic<int> clients_{0};
};

}  // namespace sluice::admin
