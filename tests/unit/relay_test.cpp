// The relay on real loopback TCP sockets: half-close in each direction, bulk both ways at
// once, a reset on one side reaching the other, and the hand-over to the kernel relay after
// the first exchange.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
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

// The hand-over (RelayOptions::hand_over_after_exchange): relay() stops once the client spoke,
// the target answered and the client spoke again, with nothing pending in its buffers nor
// unread on either socket, so that the kernel relay can carry on from there.
class HandOver : public ::testing::Test {
protected:
    // Runs relay() on its own thread; `buffer_size` at most sizeof to_target_.
    std::future<RelayResult>& start(bool hand_over, size_t buffer_size = sizeof(to_target_)) {
        RelayOptions options;
        options.hand_over_after_exchange = hand_over;
        return relays_.emplace_back(std::async(std::launch::async, [this, options, buffer_size] {
            return relay(client_.near.get(), target_.near.get(), to_target_, to_client_,
                         buffer_size, options);
        }));
    }
    // What the relay returned; one that has not returned within 30 s fails the test and is
    // ended.
    RelayResult result_of(std::future<RelayResult>& relayed) {
        if (relayed.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
            ADD_FAILURE() << "the relay did not return";
            end_relays();
        }
        return relayed.get();
    }
    // Ends any relay still running (one a failed test left): both of sluice's sockets shut.
    void end_relays() {
        ::shutdown(client_.near.get(), SHUT_RDWR);
        ::shutdown(target_.near.get(), SHUT_RDWR);
    }
    void TearDown() override { end_relays(); }
    // `data` from the client (or the target) arrives at the other end.
    void client_says(const std::string& data) {
        send_all(client_.far.get(), data);
        EXPECT_EQ(receive(target_.far.get(), data.size()), data);
    }
    void target_says(const std::string& data) {
        send_all(target_.far.get(), data);
        EXPECT_EQ(receive(client_.far.get(), data.size()), data);
    }
    static std::string receive(int fd, size_t n) {
        std::string data(n, '\0');
        const ssize_t got = ::recv(fd, data.data(), n, MSG_WAITALL);
        data.resize(got > 0 ? static_cast<size_t>(got) : 0);
        return data;
    }
    // Bytes received on sluice's side of a pair and not read.
    static int unread(const TcpPair& pair) {
        int bytes = -1;
        EXPECT_EQ(::ioctl(pair.near.get(), FIONREAD, &bytes), 0);
        return bytes;
    }
    // Waits until `fd` has something to read (bytes or EOF) that the relay still running in
    // `relayed` passed on: false as soon as that relay has returned instead (or after 30 s).
    static bool passed_on(int fd, std::future<RelayResult>& relayed) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd ready{fd, POLLIN, 0};
            if (::poll(&ready, 1, 10) > 0) return true;
            if (relayed.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
                return false;
        }
        return false;
    }
    // Both sides end, the client first, through the relay running in `relayed`.
    void close_both(std::future<RelayResult>& relayed) {
        ::shutdown(client_.far.get(), SHUT_WR);
        ASSERT_TRUE(passed_on(target_.far.get(), relayed)) << "the relay stopped before the EOF";
        EXPECT_EQ(read_to_eof(target_.far.get()), "");
        ::shutdown(target_.far.get(), SHUT_WR);
        EXPECT_EQ(read_to_eof(client_.far.get()), "");
    }

    TcpPair client_ = make_pair();  // far: the client application; near: what sluice accepted
    TcpPair target_ = make_pair();  // near: sluice's connection to the target; far: the target
    char to_target_[16384], to_client_[16384];
    std::deque<std::future<RelayResult>> relays_;  // destroyed first: each waits for its relay
};

TEST_F(HandOver, AfterClientTargetClientWithNothingPending) {
    auto& first = start(true);
    client_says("GET /1");
    target_says("200 one");
    client_says("GET /2");
    const RelayResult r = result_of(first);
    EXPECT_EQ(r.end, RelayEnd::handed_over);
    EXPECT_EQ(r.bytes_to_target, 12u);  // every byte read was written: nothing pending
    EXPECT_EQ(r.bytes_to_client, 7u);
    EXPECT_EQ(unread(client_), 0);
    EXPECT_EQ(unread(target_), 0);
    // The same pair, relayed again, goes on where it stopped.
    auto& rest = start(false);
    target_says("200 two");
    client_says("GET /3");
    target_says("200 three");
    close_both(rest);
    const RelayResult r2 = result_of(rest);
    EXPECT_EQ(r2.end, RelayEnd::completed);
    EXPECT_TRUE(r2.client_finished_first);
    EXPECT_EQ(r2.bytes_to_target, 6u);
    EXPECT_EQ(r2.bytes_to_client, 16u);
}

// One request and its response (Connection: close) never pay for a hand-over.
TEST_F(HandOver, NotAfterOneRequestAndResponse) {
    auto& relayed = start(true);
    client_says("GET /");
    target_says("200 OK");
    close_both(relayed);
    const RelayResult r = result_of(relayed);
    EXPECT_EQ(r.end, RelayEnd::completed);
    EXPECT_EQ(r.bytes_to_target, 5u);
    EXPECT_EQ(r.bytes_to_client, 6u);
}

// A target that closes after its answer has ended: the client speaking again is no exchange
// to hand over.
TEST_F(HandOver, NotWhenTheTargetClosedAfterItsAnswer) {
    auto& relayed = start(true);
    client_says("QUIT");
    send_all(target_.far.get(), "221 bye");
    ::shutdown(target_.far.get(), SHUT_WR);
    EXPECT_EQ(receive(client_.far.get(), 7), "221 bye");
    ASSERT_TRUE(passed_on(client_.far.get(), relayed)) << "the relay stopped before the EOF";
    EXPECT_EQ(read_to_eof(client_.far.get()), "");
    client_says("late");
    ::shutdown(client_.far.get(), SHUT_WR);
    ASSERT_TRUE(passed_on(target_.far.get(), relayed)) << "the relay stopped before the EOF";
    EXPECT_EQ(read_to_eof(target_.far.get()), "");
    const RelayResult r = result_of(relayed);
    EXPECT_EQ(r.end, RelayEnd::completed);
    EXPECT_FALSE(r.client_finished_first);
    EXPECT_EQ(r.bytes_to_target, 8u);
    EXPECT_EQ(r.bytes_to_client, 7u);
}

// With a buffer smaller than what arrived, the relay reads a segment in parts: it hands over
// only once nothing is left unread (the kernel relay would send a partly read segment whole).
TEST_F(HandOver, OnlyOnceNothingIsUnread) {
    auto& relayed = start(true, 16);
    client_says("a");
    target_says("b");
    const std::string bulk = random_bytes(1000, 3);  // one segment, read 16 bytes at a time
    send_all(client_.far.get(), bulk);
    const RelayResult r = result_of(relayed);
    EXPECT_EQ(r.end, RelayEnd::handed_over);
    EXPECT_EQ(unread(client_), 0);
    EXPECT_EQ(unread(target_), 0);
    ASSERT_EQ(r.bytes_to_target, 1 + bulk.size());
    EXPECT_EQ(r.bytes_to_client, 1u);
    EXPECT_EQ(receive(target_.far.get(), bulk.size()), bulk);
}

}  // namespace
}  // namespace sluice::worker
