// Balancing policies end to end: weights, least connections across workers, per-target
// caps with a queue, the PROXY protocol, on_no_target and drain/enable.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <mutex>
#include <thread>

#include "scripted_server.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;

std::string target_block(uint16_t port, const std::string& extra = "") {
    return "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(port) + "\"\n" + extra;
}

// Two scripted targets, "a" and "b": GET /hold is held open until the client closes,
// anything else gets a 200 naming the target.
class PolicyTest : public SluiceTest {
protected:
    ScriptedServer::Handler named(const std::string& name, std::unique_ptr<ScriptedServer>& self) {
        return [name, &self](int fd, const std::string& path) {
            if (path == "/hold") {
                ScriptedServer::send_all(fd, "HTTP/1.1 200 OK\r\nX-Instance: " + name + "\r\n\r\n");
                return self->hang(fd);
            }
            ScriptedServer::send_all(fd, ScriptedServer::reply(200, name, name));
        };
    }
    void SetUp() override {
        a_ = std::make_unique<ScriptedServer>(named("a", a_));
        b_ = std::make_unique<ScriptedServer>(named("b", b_));
    }
    // Opens a connection through sluice that stays open; returns the socket.
    int hold() {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port_);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        const std::string request = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
        EXPECT_EQ(::send(fd, request.data(), request.size(), 0),
                  static_cast<ssize_t>(request.size()));
        held_.push_back(fd);
        return fd;
    }
    // What the held connection's target answered ("a" or "b"), once it answered.
    std::string held_by(int fd) {
        std::string reply;
        char buffer[512];
        wait_until(
            [&] {
                pollfd p{fd, POLLIN, 0};
                if (::poll(&p, 1, 0) > 0) {
                    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
                    if (n > 0) reply.append(buffer, static_cast<size_t>(n));
                }
                return reply.find("\r\n\r\n") != std::string::npos;
            },
            5s);
        const auto at = reply.find("X-Instance: ");
        return at == std::string::npos ? "" : reply.substr(at + 12, 1);
    }
    void TearDown() override {
        for (int fd : held_) ::close(fd);
        SluiceTest::TearDown();
    }

    std::unique_ptr<ScriptedServer> a_, b_;
    std::vector<int> held_;
};

TEST_F(PolicyTest, WeightsThreeToOneGiveExactly75To25) {
    extra_targets_ = target_block(a_->port(), "weight = 3\n") + target_block(b_->port());
    start_sluice(2);
    const auto served = spread(400);
    EXPECT_EQ(served.count(""), 0u);
    EXPECT_EQ(served.at("a"), 300);
    EXPECT_EQ(served.at("b"), 100);
}

TEST_F(PolicyTest, LeastConnectionsAvoidsTheTargetHoldingLongConnections) {
    const uint16_t admin = free_port();
    extra_top_ =
        "algorithm = \"least_connections\"\nadmin = \"127.0.0.1:" + std::to_string(admin) + "\"\n";
    extra_targets_ = target_block(a_->port()) + target_block(b_->port());
    start_sluice(2);
    const std::string b = "127.0.0.1:" + std::to_string(b_->port());
    // While b drains, three long connections land on a (through either worker).
    ASSERT_EQ(http_request(admin, "POST", "/targets/" + b + "/drain", "").status, 200);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(held_by(hold()), "a");
    ASSERT_EQ(http_request(admin, "POST", "/targets/" + b + "/enable", "").status, 200);
    // a holds 3, b none: every new connection, on either worker, goes to b.
    EXPECT_EQ(spread(20)["b"], 20);
    EXPECT_EQ(http_request(admin, "POST", "/targets/nope:1/drain", "").status, 404);
    EXPECT_THAT(sluice_->log(), HasSubstr("admin: target " + b + " draining"));
}

TEST_F(PolicyTest, TargetAtItsCapIsSkipped) {
    extra_targets_ = target_block(a_->port(), "max_connections = 1\n") + target_block(b_->port());
    start_sluice(2);
    int first = hold();
    if (held_by(first) != "a") first = hold();  // the rotation may start at b
    ASSERT_EQ(held_by(first), "a");
    EXPECT_EQ(spread(10)["b"], 10);
}

TEST_F(PolicyTest, AllAtTheirCapWaitForQueueTimeoutThenGetTheReply) {
    extra_top_ = "queue_timeout = \"3s\"\n";
    extra_targets_ = target_block(a_->port(), "max_connections = 1\n") +
                     target_block(b_->port(), "max_connections = 1\n");
    start_sluice(2);
    const int h1 = hold();
    const int h2 = hold();
    EXPECT_NE(held_by(h1), held_by(h2));
    // Both full: the next client waits in the queue; freeing a slot lets it through.
    auto waiting = std::async(std::launch::async, [&] { return get(); });
    EXPECT_EQ(waiting.wait_for(300ms), std::future_status::timeout);  // it is waiting
    ::close(h1);
    held_.erase(held_.begin());
    EXPECT_EQ(waiting.get().status, 200);
}

TEST_F(PolicyTest, QueueTimeoutEndsWithOnNoTargetReply) {
    extra_top_ = "queue_timeout = \"200ms\"\n";
    extra_targets_ = target_block(a_->port(), "max_connections = 1\n");
    start_sluice(1);
    ASSERT_EQ(held_by(hold()), "a");
    const HttpReply reply = get();
    EXPECT_EQ(reply.status, 503);
    EXPECT_THAT(sluice_->log(), HasSubstr("end=limit"));
}

TEST_F(PolicyTest, OnNoTargetCloseClosesWithoutAReply) {
    extra_top_ = "on_no_target = \"close\"\n";
    extra_targets_ = target_block(a_->port());
    start_sluice(1);
    a_.reset();  // the only target goes away
    ASSERT_TRUE(wait_until([&] { return log_count("Healthy targets: 0") == 1; }, 5s));
    const HttpReply reply = get();
    EXPECT_FALSE(reply.ok);
    EXPECT_EQ(reply.raw, "");
}

// A target that answers every request; the bytes before the request (the PROXY header)
// are in last_prefix().
ScriptedServer::Handler answer() {
    return [](int fd, const std::string&) {
        ScriptedServer::send_all(fd, ScriptedServer::reply(200, "ok", "capture"));
    };
}

// Sends one request from a socket of `family` to sluice at `host`; returns the client's
// local port.
uint16_t request_from(int family, const char* host, uint16_t port) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage addr{};
    socklen_t len;
    if (family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&addr);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        inet_pton(AF_INET, host, &in->sin_addr);
        len = sizeof *in;
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        inet_pton(AF_INET6, host, &in6->sin6_addr);
        len = sizeof *in6;
    }
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buffer[512];
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
    ::close(fd);
    return ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
}

std::string v2_header(bool v6, const std::string& ip_bytes, uint16_t client_port,
                      uint16_t server_port) {
    std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
    h += '\x21';
    h += v6 ? '\x21' : '\x11';
    const uint16_t length = v6 ? 36 : 12;
    h += static_cast<char>(length >> 8);
    h += static_cast<char>(length & 0xff);
    h += ip_bytes + ip_bytes;  // client and destination are both loopback
    for (uint16_t p : {client_port, server_port}) {
        h += static_cast<char>(p >> 8);
        h += static_cast<char>(p & 0xff);
    }
    return h;
}

struct ProxyCase {
    const char* version;
    bool v6;
};

void PrintTo(const ProxyCase& c, std::ostream* os) {
    *os << c.version << (c.v6 ? " IPv6" : " IPv4");
}

class ProxyProtocolTest : public SluiceTest, public ::testing::WithParamInterface<ProxyCase> {};

TEST_P(ProxyProtocolTest, TargetReceivesTheHeaderByteExact) {
    const ProxyCase c = GetParam();
    ScriptedServer capture(answer());
    extra_targets_ =
        target_block(capture.port(), "send_proxy = \"" + std::string(c.version) + "\"\n");
    port_ = free_port();
    const char* host = c.v6 ? "::1" : "127.0.0.1";
    if (c.v6) listen_host_ = "[::1]";
    config_path_ = dir_.write("sluice.toml", config_text());
    sluice_ = std::make_unique<Process>(
        std::vector<std::string>{SLUICE_BIN, "--config", config_path_, "--workers", "1"},
        dir_.path() + "/sluice.log");
    ASSERT_TRUE(wait_until([&] { return log_count("started worker") == 1; }, 5s));
    uint16_t client_port = 0;
    ASSERT_TRUE(wait_until(
        [&] {
            client_port = request_from(c.v6 ? AF_INET6 : AF_INET, host, port_);
            return !capture.last_prefix().empty();
        },
        5s))
        << sluice_->log();
    std::string expected;
    if (std::string(c.version) == "v1") {
        expected = std::string("PROXY ") + (c.v6 ? "TCP6 ::1 ::1 " : "TCP4 127.0.0.1 127.0.0.1 ") +
                   std::to_string(client_port) + " " + std::to_string(port_) + "\r\n";
    } else {
        const std::string ip =
            c.v6 ? std::string(15, '\0') + '\x01' : std::string("\x7f\0\0\x01", 4);
        expected = v2_header(c.v6, ip, client_port, port_);
    }
    EXPECT_EQ(capture.last_prefix(), expected);
}

INSTANTIATE_TEST_SUITE_P(Versions, ProxyProtocolTest,
                         ::testing::Values(ProxyCase{"v1", false}, ProxyCase{"v1", true},
                                           ProxyCase{"v2", false}, ProxyCase{"v2", true}),
                         [](const auto& test_info) {
                             return std::string(test_info.param.version) +
                                    (test_info.param.v6 ? "_ipv6" : "_ipv4");
                         });

}  // namespace
}  // namespace sluice::test
