// Connection accounting end to end: a target's max_connections holds when a worker is killed
// in the middle of a connect, and across a reload (the old generation's open connections
// still count), and comes back to normal once the old generation is gone.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <regex>
#include <thread>

#include "scripted_server.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;

std::string target_block(uint16_t port, const std::string& extra = "") {
    return "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(port) + "\"\n" + extra;
}

// A target whose accept queue is full (listen backlog 0 and one connection nobody accepts):
// the kernel drops every further SYN, so a connect to it stays in progress until the
// connector's own timeout. open_up() starts accepting: each connection then gets a 200.
class FullQueueTarget {
public:
    FullQueueTarget() {
        listen_fd_ = listen_loopback(0, port_, "full-queue target");
        filler_ = connect_loopback(port_);
        EXPECT_GE(filler_, 0);
    }
    ~FullQueueTarget() {
        stop_ = true;
        if (acceptor_.joinable()) acceptor_.join();
        ::close(listen_fd_);
        if (filler_ >= 0) ::close(filler_);
    }
    FullQueueTarget(const FullQueueTarget&) = delete;
    FullQueueTarget& operator=(const FullQueueTarget&) = delete;

    uint16_t port() const { return port_; }
    // Connections waiting in the accept queue (TCP_INFO of a listening socket).
    unsigned queued() const {
        tcp_info info{};
        socklen_t len = sizeof info;
        if (::getsockopt(listen_fd_, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
        return info.tcpi_unacked;
    }
    void open_up() {
        acceptor_ = std::thread([this] {
            while (!stop_) {
                pollfd p{listen_fd_, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
                const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd < 0) continue;
                answer(fd);
                ::close(fd);
            }
        });
    }

private:
    // Reads the request head (briefly: a probe sends none) and answers 200.
    static void answer(int fd) {
        std::string head;
        char buffer[1024];
        while (head.find("\r\n\r\n") == std::string::npos) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 1000) <= 0) break;
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) break;
            head.append(buffer, static_cast<size_t>(n));
        }
        ScriptedServer::send_all(fd, ScriptedServer::reply(200, "open", "full-queue"));
    }

    int listen_fd_ = -1;
    uint16_t port_ = 0;
    int filler_ = -1;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
};

class AccountingTest : public SluiceTest {
protected:
    // The pids the master logged as started worker processes, in order.
    std::vector<pid_t> started_workers() const {
        const std::string log = sluice_->log();
        static const std::regex started("started worker process ([0-9]+)");
        std::vector<pid_t> pids;
        for (auto it = std::sregex_iterator(log.begin(), log.end(), started);
             it != std::sregex_iterator(); ++it)
            pids.push_back(static_cast<pid_t>(std::stol((*it)[1].str())));
        return pids;
    }
    // The open connections /metrics reports for the address 127.0.0.1:`port`.
    std::string active_line(uint16_t port, int value) const {
        const std::string address = "127.0.0.1:" + std::to_string(port);
        return "sluice_target_active_connections{target=\"" + address + "\",address=\"" + address +
               "\"} " + std::to_string(value) + "\n";
    }
    bool metrics_show(const std::string& line) {
        return admin("/metrics").raw.find(line) != std::string::npos;
    }
    // Opens a connection through sluice that the holder holds open, once its reply head has
    // come back; -1 if none got through in time. A connection that was turned away (the one
    // before it may not have been released yet) is tried again.
    int hold() {
        int held = -1;
        wait_until(
            [&] {
                const int fd = connect_loopback(port_);
                const std::string request = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
                if (fd < 0 || ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
                                  static_cast<ssize_t>(request.size())) {
                    if (fd >= 0) ::close(fd);
                    return false;
                }
                if (reply_head(fd).find("X-Instance: holder") == std::string::npos) {
                    ::close(fd);
                    return false;
                }
                held = fd;
                return true;
            },
            kPatience);
        return held;
    }
    // The reply head on `fd` (up to the blank line), or what came before it closed.
    static std::string reply_head(int fd) {
        std::string head;
        char buffer[512];
        while (head.find("\r\n\r\n") == std::string::npos) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 5000) <= 0) break;
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) break;
            head.append(buffer, static_cast<size_t>(n));
        }
        return head;
    }

    // A target that holds GET /hold open until the client closes and answers anything else.
    ScriptedServer holder_{[this](int fd, const std::string& path) {
        if (path == "/hold") {
            ScriptedServer::send_all(fd, "HTTP/1.1 200 OK\r\nX-Instance: holder\r\n\r\n");
            return holder_.hang(fd);
        }
        ScriptedServer::send_all(fd, ScriptedServer::reply(200, "holder", "holder"));
    }};
};

// A worker killed while its connect to a target is in progress must not leave that
// connection counted for ever: with max_connections = 1 every later client used to get
// 503 (end=limit) with nothing open.
TEST_F(AccountingTest, WorkerKilledMidConnectLeavesNoConnectionCounted) {
    FullQueueTarget target;
    ASSERT_TRUE(wait_until([&] { return target.queued() >= 1; }, kPatience));
    with_admin_ = true;
    // A connect that hangs for a minute; checks that fail cannot take the target DOWN in
    // the test's time (fall = 100, first check at a random point of a 1 h interval).
    extra_top_ = "connect_timeout = \"60s\"\n";
    extra_targets_ = target_block(target.port(),
                                  "max_connections = 1\n"
                                  "health_check = { interval = \"1h\", fall = 100 }\n");
    config_path_ = dir_.write("sluice.toml", config_text());
    launch_sluice(1);
    ASSERT_FALSE(HasFatalFailure());
    std::vector<pid_t> workers;
    ASSERT_TRUE(wait_until([&] { return !(workers = started_workers()).empty(); }, kPatience));

    // A client whose connection the worker is trying to connect to the target.
    const int client = connect_loopback(port_);
    ASSERT_GE(client, 0);
    ASSERT_TRUE(wait_until([&] { return metrics_show(active_line(target.port(), 1)); }, kPatience))
        << sluice_->log();
    ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);
    ASSERT_TRUE(wait_until([&] { return started_workers().size() >= 2; }, kPatience));
    ::close(client);

    target.open_up();
    HttpReply reply;
    EXPECT_TRUE(wait_until([&] { return (reply = get()).status == 200; }, kPatience))
        << "last reply: " << reply.raw << "\n"
        << sluice_->log();
    EXPECT_TRUE(wait_until([&] { return metrics_show(active_line(target.port(), 0)); }, kPatience));
}

// max_connections holds across a reload: the old generation's open connection counts for
// the new generation's workers too, until it closes.
TEST_F(AccountingTest, CapHoldsAcrossAReload) {
    with_admin_ = true;
    extra_targets_ = target_block(holder_.port(), "max_connections = 1\n");
    start_sluice(1);
    const int held = hold();
    ASSERT_GE(held, 0) << sluice_->log();
    ASSERT_TRUE(
        wait_until([&] { return metrics_show(active_line(holder_.port(), 1)); }, kPatience));
    reload(config_text());
    ASSERT_FALSE(HasFatalFailure());
    const int requests_before = holder_.requests();
    const int limited_before = log_count("end=limit");
    EXPECT_EQ(get().status, 503);
    EXPECT_EQ(log_count("end=limit"), limited_before + 1);
    EXPECT_EQ(holder_.requests(), requests_before) << "a second connection reached the target";
    EXPECT_TRUE(metrics_show(active_line(holder_.port(), 1)));

    ::close(held);
    ASSERT_TRUE(wait_until([&] { return log_count("generation 1 has finished") == 1; }, kPatience))
        << sluice_->log();
    EXPECT_EQ(get().status, 200);
    EXPECT_TRUE(
        wait_until([&] { return metrics_show(active_line(holder_.port(), 0)); }, kPatience));
    // The cap is 1 again, not more: one held, the next one turned away.
    const int again = hold();
    ASSERT_GE(again, 0) << sluice_->log();
    EXPECT_EQ(get().status, 503);
    ::close(again);
}

// An old generation whose worker is stopped at drain_timeout with a connection still open
// (SIGQUIT) leaves that connection counted; the master gives it back when the generation
// ends, so the cap does not stay taken.
TEST_F(AccountingTest, CapIsFreedWhenADrainingWorkerIsStoppedWithAConnectionOpen) {
    with_admin_ = true;
    extra_top_ = "drain_timeout = \"200ms\"\n";
    extra_targets_ = target_block(holder_.port(), "max_connections = 1\n");
    start_sluice(1);
    const int held = hold();
    ASSERT_GE(held, 0) << sluice_->log();
    reload(config_text());
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(wait_until([&] { return log_count("generation 1 has finished") == 1; }, kPatience))
        << sluice_->log();
    HttpReply reply;
    EXPECT_TRUE(wait_until([&] { return (reply = get()).status == 200; }, kPatience))
        << "last reply: " << reply.raw << "\n"
        << sluice_->log();
    EXPECT_TRUE(
        wait_until([&] { return metrics_show(active_line(holder_.port(), 0)); }, kPatience));
    ::close(held);
}

}  // namespace
}  // namespace sluice::test
