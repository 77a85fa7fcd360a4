// How a connection's end is told: connections still open when a drain's deadline passes
// (drain_timeout after a reload, shutdown_timeout at a stop, or an orphaned worker's own
// deadline) are cut with a reset on both sides, never a FIN that would make them look
// complete, and each is logged with its bytes and its end reason; and the conn line names
// the address the connection reached.

#include <signal.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "echo_server.hpp"
#include "harness.hpp"
#include "held_connection.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;

class DrainCutTest : public SluiceTest {
protected:
    // sluice with one worker in front of the echo server only.
    void start_with_echo(const std::string& top) {
        extra_top_ = top;
        extra_targets_ =
            "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(echo_.port()) + "\"\n";
        config_path_ = dir_.write("sluice.toml", config_text());
        launch_sluice(1);
    }

    // A connection held open through sluice, once the echo target answers through it.
    std::unique_ptr<HeldConnection> hold() {
        std::unique_ptr<HeldConnection> held;
        wait_until(
            [&] {
                held = std::make_unique<HeldConnection>(port_);
                return held->echoed();
            },
            kPatience);
        return held;
    }

    // sluice's conn line for the held connection, once logged ("" until then).
    std::string conn_line(const HeldConnection& held) const {
        const std::string log = sluice_->log();
        const std::string needle =
            " conn client=127.0.0.1:" + std::to_string(held.local_port()) + " ";
        const auto at = log.find(needle);
        if (at == std::string::npos) return "";
        return log.substr(at, log.find('\n', at) - at);
    }

    void expect_cut_and_logged(const HeldConnection& held, const std::string& end) {
        EXPECT_EQ(held.how_it_ends(), "reset");
        std::string line;
        EXPECT_TRUE(wait_until([&] { return !(line = conn_line(held)).empty(); }, kPatience))
            << sluice_->log();
        EXPECT_THAT(line, HasSubstr(" bytes_to_target=5 bytes_to_client=5 end=" + end));
        // The target was reset too, not sent a FIN: the echo server saw no clean end.
        EXPECT_TRUE(wait_until([&] { return echo_.failed() == 1; }, kPatience));
        EXPECT_EQ(echo_.completed(), 0);
    }

    EchoServer echo_;
};

TEST_F(DrainCutTest, ReloadCutsAConnectionLeftAtDrainTimeout) {
    start_with_echo("drain_timeout = \"300ms\"\n");
    const auto held = hold();
    ASSERT_TRUE(held && held->echoed()) << sluice_->log();
    reload(config_text());
    expect_cut_and_logged(*held, "drain_timeout");
}

TEST_F(DrainCutTest, StopCutsAConnectionLeftAtShutdownTimeout) {
    start_with_echo("shutdown_timeout = \"300ms\"\n");
    const auto held = hold();
    ASSERT_TRUE(held && held->echoed()) << sluice_->log();
    sluice_->signal(SIGTERM);
    expect_cut_and_logged(*held, "shutdown_timeout");
    const int status = sluice_->wait_exit(kPatience);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// A worker whose master was killed drains for shutdown_timeout on its own, then cuts what
// is left and exits: with idle_timeout = "0s" nothing else would ever end the connection.
TEST_F(DrainCutTest, OrphanedWorkerCutsAtShutdownTimeoutAndExits) {
    start_with_echo("idle_timeout = \"0s\"\nshutdown_timeout = \"300ms\"\n");
    std::vector<pid_t> children;
    ASSERT_TRUE(wait_until([&] { return (children = children_of(sluice_->pid())).size() == 2; },
                           kPatience));
    const auto held = hold();
    ASSERT_TRUE(held && held->echoed()) << sluice_->log();
    sluice_->signal(SIGKILL);
    ASSERT_NE(sluice_->wait_exit(kPatience), -1);
    expect_cut_and_logged(*held, "shutdown_timeout");
    // The checker is started first, so the last child is the worker.
    EXPECT_TRUE(wait_until([&] { return !pid_alive(children.back()); }, kPatience))
        << sluice_->log();
}

// The checker may give the connection's slot another address while it lasts (the name now
// resolves elsewhere); the conn line still names the address the connection reached.
TEST_F(DrainCutTest, TheConnLineNamesTheAddressConnectedTo) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (a mount namespace for /etc/hosts)";
    const std::string port = std::to_string(echo_.port());
    const std::string hosts = dir_.write("hosts", "127.0.0.1 echo\n");
    const std::string nsswitch = dir_.write("nsswitch.conf", "hosts: files\n");
    wrapper_ = {"/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                "mount --bind " + hosts + " /etc/hosts && mount --bind " + nsswitch +
                    " /etc/nsswitch.conf && exec \"$0\" \"$@\""};
    extra_targets_ = "\n[[targets]]\naddress = \"echo:" + port + "\"\n";
    config_path_ = dir_.write("sluice.toml", config_text());
    launch_sluice(1);
    const auto held = hold();
    ASSERT_TRUE(held && held->echoed()) << sluice_->log();
    dir_.write("hosts", "127.0.0.2 echo\n");  // the slot of .1 is freed and given to .2
    ASSERT_TRUE(
        wait_until([&] { return log_count("127.0.0.2:" + port + " added") >= 1; }, kPatience))
        << sluice_->log();
    EXPECT_EQ(held->finish(), "EOF");
    std::string line;
    ASSERT_TRUE(wait_until([&] { return !(line = conn_line(*held)).empty(); }, kPatience))
        << sluice_->log();
    EXPECT_THAT(line, HasSubstr(" address=127.0.0.1:" + port + " "));
}

}  // namespace
}  // namespace sluice::test
