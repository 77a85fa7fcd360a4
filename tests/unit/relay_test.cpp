// The relay on real loopback TCP sockets: half-close in each direction, bulk both ways at
// once, and a reset on one side reaching the other.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <string>
#include <thread>

#include "common/unique_fd.hpp"
#include "tcp_pair.hpp"
#include "worker/relay.hpp"

namespace sluice::worker {
namespace {

using test::make_pair;
using test::TcpPair;

void send_all(int fd, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
        const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        ASSERT_GT(n, 0) << std::strerror(errno);
        sent += static_cast<size_t>(n);
    }
}

// Reads until EOF (or an error); the bytes read.
std::string read_to_eof(int fd) {
    std::string out;
    char buffer[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) return out;
        out.append(buffer, static_cast<size_t>(n));
    }
}

std::string random_bytes(size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(gen());
    return s;
}

class Relay : public ::testing::Test {
protected:
    explicit Relay(std::chrono::milliseconds idle_timeout = {}) : idle_timeout_(idle_timeout) {}
    void SetUp() override {
        client_ = make_pair();  // far: the client application; near: what sluice accepted
        target_ = make_pair();  // near: sluice's connection to the target; far: the target
        result_ = std::async(std::launch::async, [this] {
            return relay(client_.near.get(), target_.near.get(), to_target_, to_client_,
                         sizeof to_target_,
                         RelayOptions{.counters = {}, .idle_timeout = idle_timeout_});
        });
    }
    const std::chrono::milliseconds idle_timeout_;
    TcpPair client_, target_;
    char to_target_[16384], to_client_[16384];
    std::future<RelayResult> result_;
};

TEST_F(Relay, ClientHalfCloseStillDeliversTheReply) {
    send_all(client_.far.get(), "request");
    ::shutdown(client_.far.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(target_.far.get()), "request");  // EOF passed on to the target
    send_all(target_.far.get(), "reply after the client's EOF");
    ::shutdown(target_.far.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(client_.far.get()), "reply after the client's EOF");
    const RelayResult r = result_.get();
    EXPECT_EQ(r.end, RelayEnd::completed);
    EXPECT_EQ(r.bytes_to_target, 7u);
    EXPECT_EQ(r.bytes_to_client, 28u);
}

TEST_F(Relay, TargetHalfCloseKeepsTheClientSending) {
    send_all(target_.far.get(), "banner");
    ::shutdown(target_.far.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(client_.far.get()), "banner");
    send_all(client_.far.get(), "upload after the target's EOF");
    ::shutdown(client_.far.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(target_.far.get()), "upload after the target's EOF");
    EXPECT_EQ(result_.get().end, RelayEnd::completed);
}

TEST_F(Relay, BulkBothWaysAtOnceArrivesIntact) {
    const std::string up = random_bytes(8 << 20, 1);
    const std::string down = random_bytes(6 << 20, 2);
    auto client_reads =
        std::async(std::launch::async, [&] { return read_to_eof(client_.far.get()); });
    auto target_reads =
        std::async(std::launch::async, [&] { return read_to_eof(target_.far.get()); });
    std::thread client_writes([&] {
        send_all(client_.far.get(), up);
        ::shutdown(client_.far.get(), SHUT_WR);
    });
    send_all(target_.far.get(), down);
    ::shutdown(target_.far.get(), SHUT_WR);
    client_writes.join();
    EXPECT_TRUE(target_reads.get() == up);
    EXPECT_TRUE(client_reads.get() == down);
    const RelayResult r = result_.get();
    EXPECT_EQ(r.end, RelayEnd::completed);
    EXPECT_EQ(r.bytes_to_target, up.size());
    EXPECT_EQ(r.bytes_to_client, down.size());
}

TEST_F(Relay, TargetResetResetsTheClient) {
    send_all(client_.far.get(), "hello");
    char hello[5];  // not to_target_: the relay is still using its buffers
    EXPECT_EQ(::recv(target_.far.get(), hello, sizeof hello, MSG_WAITALL), 5);
    const linger reset{1, 0};
    ::setsockopt(target_.far.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    target_.far.reset();
    EXPECT_EQ(result_.get().end, RelayEnd::target_error);
    client_.near.reset();  // what the worker does after relay() returns
    char byte;
    EXPECT_EQ(::recv(client_.far.get(), &byte, 1, 0), -1);
    EXPECT_EQ(errno, ECONNRESET);
}

// An idle timeout longer than one poll() can wait (2^31 ms) is neither an immediate end nor
// a wrapped-around one: the relay goes on as with any other.
class RelayWithLongIdleTimeout : public Relay {
protected:
    RelayWithLongIdleTimeout() : Relay(std::chrono::hours(600)) {}
};

TEST_F(RelayWithLongIdleTimeout, RelaysAsUsual) {
    send_all(client_.far.get(), "ping");
    char ping[4];
    EXPECT_EQ(::recv(target_.far.get(), ping, sizeof ping, MSG_WAITALL), 4);
    ::shutdown(client_.far.get(), SHUT_WR);
    send_all(target_.far.get(), "pong");
    ::shutdown(target_.far.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(client_.far.get()), "pong");
    EXPECT_EQ(result_.get().end, RelayEnd::completed);
}

}  // namespace
}  // namespace sluice::worker
