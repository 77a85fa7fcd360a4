#pragma once
// The admin listener, served by the health-checker process (never by a worker, so it cannot
// slow the data path): GET /metrics (Prometheus text), /status (JSON) and / (an HTML page
// that refreshes itself); POST /targets/NAME/drain and /enable (a draining target gets no
// new connection and keeps its open ones). Who may ask what: admin/access.hpp; the replies:
// admin/routes.hpp.
//
// One thread serves every client with poll(), so a client costs a descriptor and its buffers,
// never a thread:
//   - each request has one deadline (kRequestDeadline) from its accept to the end of its
//     reply, however the client slices its bytes or reads ours;
//   - a request whose head has already arrived when it is accepted is answered at once;
//   - at most kMaxClients are open at once; when all are taken, a new client evicts the one
//     open longest (closed without a reply). Slow clients can then only push each other out:
//     a scraper that sends its request promptly is answered before kMaxClients newer clients
//     could arrive and evict it (nginx and HAProxy also bound the whole head, not each read).
// The listening socket is made non-blocking: on a reload the old and the new checker poll
// the same socket, and the one that loses an accept must not block in it.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "admin/routes.hpp"
#include "common/net.hpp"
#include "common/shared_table.hpp"
#include "common/unique_fd.hpp"
#include "conf/config.hpp"

namespace sluice::admin {

class AdminServer {
public:
    // `listen_fd` is the listening socket the master opened for `admin`; `ledger` gives the
    // open connections the reports show (read only).
    AdminServer(int listen_fd, const Config& config, SharedTable& table, const LoadLedger& ledger);

    // Starts the serving thread; it runs until the process exits.
    void start();

    static constexpr size_t kMaxClients = 64;
    static constexpr std::chrono::seconds kRequestDeadline{5};
    static constexpr size_t kMaxRequestHead = 8192;

private:
    enum class Phase { reading, writing, lingering, done };
    struct Client {
        UniqueFd fd;
        net::Endpoint peer;
        net::Deadline deadline;
        Phase phase = Phase::reading;
        std::string in;   // the request head so far
        std::string out;  // the reply
        size_t sent = 0;
        size_t discarded = 0;  // bytes read and dropped after the reply
    };

    void run();
    // Accepts what the listening socket holds (a bounded batch) and serves each newcomer as
    // far as it can go without waiting.
    void accept_ready();
    void evict_oldest();
    // Moves `client` as far as its socket allows without blocking.
    void advance(Client& client);
    void read_head(Client& client);
    void write_reply(Client& client);
    void linger(Client& client);

    const int listen_fd_;
    AdminRoutes routes_;
    std::vector<Client> clients_;
    // After EMFILE and the like, accepting pauses until then instead of spinning on poll().
    net::Deadline accept_paused_until_{};
};

}  // namespace sluice::admin
