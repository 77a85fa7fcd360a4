#include "admin/admin_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "common/check.hpp"
#include "common/log.hpp"

namespace sluice::admin {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kAcceptBatch = 16;             // accepts per wake-up, so clients get their turn
constexpr size_t kMaxLingerBytes = 1 << 16;  // read and dropped after a reply, at most
constexpr auto kAcceptPause = std::chrono::milliseconds(50);

}  // namespace

AdminServer::AdminServer(int listen_fd, const Config& config, SharedTable& table,
                         const LoadLedger& ledger)
    : listen_fd_(listen_fd), routes_(config, table, ledger) {
    clients_.reserve(kMaxClients);
}

void AdminServer::start() {
    const int flags = ::fcntl(listen_fd_, F_GETFL);
    SLUICE_CHECK(flags >= 0 && ::fcntl(listen_fd_, F_SETFL, flags | O_NONBLOCK) == 0);
    std::thread([this] { run(); }).detach();
}

void AdminServer::run() {
    std::vector<pollfd> fds;
    fds.reserve(kMaxClients + 1);
    for (;;) {
        const auto now = Clock::now();
        fds.clear();
        std::optional<Clock::time_point> wake;
        const bool accepting = now >= accept_paused_until_;
        fds.push_back({listen_fd_, static_cast<short>(accepting ? POLLIN : 0), 0});
        if (!accepting) wake = accept_paused_until_;
        for (const Client& c : clients_) {
            fds.push_back(
                {c.fd.get(), static_cast<short>(c.phase == Phase::writing ? POLLOUT : POLLIN), 0});
            wake = wake ? std::min(*wake, c.deadline) : c.deadline;
        }
        if (::poll(fds.data(), fds.size(), wake ? net::poll_timeout_ms(*wake, now) : -1) < 0 &&
            errno != EINTR)
            LOG_ERROR("admin: poll: %s", std::strerror(errno));
        const auto after = Clock::now();
        for (size_t i = 0; i < clients_.size(); ++i) {
            Client& c = clients_[i];
            if (fds[i + 1].revents != 0) advance(c);
            if (c.phase != Phase::done && after >= c.deadline) c.phase = Phase::done;  // silent
        }
        std::erase_if(clients_, [](const Client& c) { return c.phase == Phase::done; });
        if ((fds[0].revents & POLLIN) != 0) accept_ready();
    }
}

void AdminServer::accept_ready() {
    for (int i = 0; i < kAcceptBatch; ++i) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)  // EMFILE and co.: try again later
                accept_paused_until_ = Clock::now() + kAcceptPause;
            return;
        }
        if (clients_.size() >= kMaxClients) evict_oldest();
        Client& c = clients_.emplace_back();
        c.fd.reset(fd);
        c.peer = net::peer_endpoint(fd);
        c.deadline = Clock::now() + kRequestDeadline;
        advance(c);  // a prompt client's request is usually here already
        if (c.phase == Phase::done) clients_.pop_back();
    }
}

void AdminServer::evict_oldest() {
    // Every client has the same time in all, so the earliest deadline is the one open longest.
    const auto oldest =
        std::min_element(clients_.begin(), clients_.end(),
                         [](const Client& a, const Client& b) { return a.deadline < b.deadline; });
    LOG_DEBUG("admin: all %zu slots taken: closing %s, open longest", kMaxClients,
              oldest->peer.to_string().c_str());
    clients_.erase(oldest);
}

void AdminServer::advance(Client& client) {
    if (client.phase == Phase::reading) read_head(client);
    if (client.phase == Phase::writing) write_reply(client);
    if (client.phase == Phase::lingering) linger(client);
}

void AdminServer::read_head(Client& client) {
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(client.fd.get(), buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // wait for more
        if (n <= 0) {  // closed or reset before a whole request: nobody to answer
            client.phase = Phase::done;
            return;
        }
        const size_t searched_from = client.in.size() < 3 ? 0 : client.in.size() - 3;
        client.in.append(buffer, static_cast<size_t>(n));
        const size_t end = client.in.find("\r\n\r\n", searched_from);
        if (end != std::string::npos && end + 4 <= kMaxRequestHead) {
            client.out = routes_.reply(std::string_view(client.in).substr(0, end + 4), client.peer);
        } else if (client.in.size() >= kMaxRequestHead) {
            client.out = plain_reply(431, "request head too large\n");
        } else {
            continue;
        }
        client.in.clear();
        client.in.shrink_to_fit();
        client.phase = Phase::writing;
        return;
    }
}

void AdminServer::write_reply(Client& client) {
    while (client.sent < client.out.size()) {
        const ssize_t n = ::send(client.fd.get(), client.out.data() + client.sent,
                                 client.out.size() - client.sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // wait until writable
        if (n < 0) {
            client.phase = Phase::done;  // the client went away: there is no one to tell
            return;
        }
        client.sent += static_cast<size_t>(n);
    }
    // All sent: end our side and wait for the client's end, reading what it still sends (a
    // body we did not read), so that closing does not reset the connection before the client
    // read the reply.
    client.out.clear();
    client.out.shrink_to_fit();
    ::shutdown(client.fd.get(), SHUT_WR);
    client.phase = Phase::lingering;
}

void AdminServer::linger(Client& client) {
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(client.fd.get(), buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        client.discarded += n > 0 ? static_cast<size_t>(n) : 0;
        if (n <= 0 || client.discarded > kMaxLingerBytes) {
            client.phase = Phase::done;
            return;
        }
    }
}

}  // namespace sluice::admin
