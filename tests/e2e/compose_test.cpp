// The docker compose demo (compose/) run as processes, as CI has no Docker engine: sluice with
// compose/sluice.toml, two spells-api instances named http-api-1 and http-api-2, and the
// README's walk-through: round robin, stop one, start it, reload, POST then GET, stop both.
//
// Names resolve as in compose, by name: sluice runs in a private mount namespace whose
// /etc/hosts (http-api-1 -> 127.0.0.2, http-api-2 -> 127.0.0.3) the test writes, rather than
// rewriting the targets to loopback addresses, so the file's addresses stay as written.
// The same namespace has its own /etc/passwd and /etc/group with a "sluice" user and group:
// the config's `user`/`group` are KEPT (not dropped, not swapped for nobody), so the test
// also checks the privilege drop the image relies on, without adding a user to the machine.

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>

#include <sstream>

#include "sluice_fixture.hpp"

#ifndef SLUICE_SOURCE_DIR
#error "SLUICE_SOURCE_DIR (the repository root) must be defined"
#endif

namespace sluice::test {
namespace {

constexpr unsigned kSluiceId = 64999;  // "sluice" in the namespace, unless the host has one

// compose/sluice.toml, with only what a shared test machine cannot use as is changed:
// listen 0.0.0.0:80 and admin 0.0.0.0:9900 -> 127.0.0.1:0 (the fixture reads the ports back
// from the log); the targets' port 8001 -> one reserved port (both instances share it, as in
// compose, on different addresses);
// and [health_check]'s interval and timeout -> the fixture's 200 ms (the file's 5 s would
// make the walk take a minute), rewritten in place, or appended if the file has none.
std::string adapt_compose_config(const std::string& text, uint16_t api) {
    const std::string check = "interval = \"" + std::to_string(kHealthInterval.count()) +
                              "ms\"\ntimeout = \"" + std::to_string(kHealthTimeout.count()) +
                              "ms\"\n";
    std::istringstream in(text);
    std::string out, line, section;
    bool had_check = false;
    while (std::getline(in, line)) {
        if (line.starts_with("[")) section = line;
        if (section.empty() && (line.starts_with("listen ") || line.starts_with("admin "))) {
            const bool is_listen = line.starts_with("listen");
            out += std::string(is_listen ? "listen" : "admin") + " = \"127.0.0.1:0\"\n";
            continue;
        }
        if (section == "[health_check]" &&
            (line.starts_with("interval") || line.starts_with("timeout")))
            continue;
        for (auto at = line.find(":8001\""); at != std::string::npos; at = line.find(":8001\""))
            line.replace(at + 1, 4, std::to_string(api));
        out += line + "\n";
        if (line == "[health_check]") {
            out += check;
            had_check = true;
        }
    }
    return had_check ? out : out + "\n[health_check]\n" + check;
}

class ComposeTest : public SluiceTest {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root (mount namespace, setuid); CI runs as root";
        uint16_t api_port = 0;
        for (int i = 1; i <= 2; ++i) {
            Backend& b = add_backend("http-api-" + std::to_string(i),
                                     "127.0.0." + std::to_string(i + 1), api_port);
            api_port = b.port;
            b.in_config = false;  // the targets come from compose/sluice.toml
            start_backend(b);
            if (HasFatalFailure()) return;
        }
        const std::string original = read_file(SLUICE_SOURCE_DIR "/compose/sluice.toml");
        ASSERT_NE(original.find("\nuser = \"sluice\""), std::string::npos) << original;
        const std::string text = adapt_compose_config(original, api_port);
        for (const char* name : {"http-api-1", "http-api-2"})
            ASSERT_NE(text.find(std::string(name) + ":" + std::to_string(api_port)),
                      std::string::npos)
                << text;
        config_path_ = dir_.write("sluice.toml", text);
        // admin_token_file = "admin-token": beside the config, as compose mounts it.
        ASSERT_NE(text.find("\nadmin_token_file = \"admin-token\""), std::string::npos) << text;
        dir_.write("admin-token", token_ + "\n");
        start_in_namespace();
    }

    // The fixture's start_sluice() writes its own config_text(), so this starts sluice the
    // same way (wrapper_, config_path_, sluice_) with the compose config and namespace.
    void start_in_namespace() {
        std::string passwd_text = read_file("/etc/passwd"), group_text = read_file("/etc/group");
        const passwd* pw = getpwnam("sluice");
        const group* gr = getgrnam("sluice");
        uid_ = pw ? pw->pw_uid : kSluiceId;
        gid_ = gr ? gr->gr_gid : kSluiceId;
        const std::string id = std::to_string(kSluiceId);
        if (!pw) passwd_text += "sluice:x:" + id + ":" + id + "::/nonexistent:/usr/sbin/nologin\n";
        if (!gr) group_text += "sluice:x:" + id + ":\n";
        std::vector<std::string> binds;
        binds.push_back(dir_.write("hosts",
                                   "127.0.0.1 localhost\n127.0.0.2 http-api-1\n"
                                   "127.0.0.3 http-api-2\n"));
        binds.push_back(dir_.write("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"));
        binds.push_back(dir_.write("passwd", passwd_text));
        binds.push_back(dir_.write("group", group_text));
        std::string script;
        for (const std::string& file : binds)
            script += "mount --bind " + file + " /etc/" + file.substr(file.rfind('/') + 1) + " && ";
        wrapper_ = {"/usr/bin/unshare", "--mount", "/bin/sh", "-c", script + "exec \"$0\" \"$@\""};
        launch_sluice(2);
        if (HasFatalFailure()) return;
        ASSERT_NE(admin_port_, 0) << sluice_->log();
        ASSERT_TRUE(wait_until([&] { return get("/healthz").status == 200; }, kPatience))
            << "sluice did not serve: " << sluice_->log();
    }

    // A field of /proc/PID/status ("Uid", "Gid", "Groups"): its values, space separated.
    static std::string proc_ids(pid_t pid, const std::string& key) {
        std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
        for (std::string line; std::getline(in, line);) {
            if (!line.starts_with(key + ":")) continue;
            std::istringstream fields(line.substr(key.size() + 1));
            std::string all, word;
            while (fields >> word) all += (all.empty() ? "" : " ") + word;
            return all;
        }
        return "";
    }

    // An admin request as from the Docker host: with the token (admin_allow_remote is set).
    std::string admin_request(const std::string& method, const std::string& path,
                              bool with_token = true) {
        return http_exchange(
            admin_port_,
            method + " " + path + " HTTP/1.1\r\nHost: localhost:9900\r\n" +
                (with_token ? "Authorization: Bearer " + token_ + "\r\n" : std::string()) + "\r\n");
    }

    unsigned uid_ = 0, gid_ = 0;
    const std::string token_ = "compose-demo-token-0123456789abcdef";
};

TEST_F(ComposeTest, UpAlternatesAndRunsAsTheSluiceUser) {
    ASSERT_TRUE(wait_until([&] { return log_count("Healthy targets: 2") >= 1; }, kPatience))
        << sluice_->log();
    const HttpReply first = get(), second = get();
    EXPECT_NE(first.instance, second.instance);  // curl twice: X-Instance alternates
    const auto served = spread(10);
    EXPECT_EQ(served.count("http-api-1") ? served.at("http-api-1") : 0, 5);
    EXPECT_EQ(served.count("http-api-2") ? served.at("http-api-2") : 0, 5);

    // Two workers and the checker run as sluice:sluice (real, effective, saved, fs ids);
    // the master keeps root, to bind port 80 again if a reload changes `listen`.
    std::vector<pid_t> children;
    ASSERT_TRUE(wait_until([&] { return (children = children_of(sluice_->pid())).size() == 3; },
                           kPatience));
    const std::string u = std::to_string(uid_), g = std::to_string(gid_);
    for (pid_t pid : children) {
        EXPECT_EQ(proc_ids(pid, "Uid"), u + " " + u + " " + u + " " + u) << pid;
        EXPECT_EQ(proc_ids(pid, "Gid"), g + " " + g + " " + g + " " + g) << pid;
        EXPECT_EQ(proc_ids(pid, "Groups"), g) << pid;
    }
    EXPECT_EQ(proc_ids(sluice_->pid(), "Uid").substr(0, 2), "0 ");

    // The admin listener (published on the host's loopback as 9900) lists both targets, to
    // a client with the token only.
    const std::string status = admin_request("GET", "/status");
    EXPECT_EQ(status_of(status), 200) << status;
    EXPECT_NE(status.find("\"target\":\"http-api-2:"), std::string::npos) << status;
    EXPECT_EQ(status_of(admin_request("GET", "/status", false)), 401);

    // docker compose kill -s HUP load-balancer: a reload, and the same two targets serve.
    sluice_->signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return log_count("reload done") >= 1; }, kPatience))
        << sluice_->log();
    const auto after = spread(10);
    EXPECT_EQ(after.count("http-api-1") ? after.at("http-api-1") : 0, 5);
    EXPECT_EQ(after.count("http-api-2") ? after.at("http-api-2") : 0, 5);
}

TEST_F(ComposeTest, StopOneStartItStopBoth) {
    // docker compose stop http-api-2: the traffic moves to http-api-1.
    stop_backend(backends_[1]);
    ASSERT_TRUE(wait_until([&] { return log_count("Healthy targets: 1") >= 1; }, kPatience))
        << sluice_->log();
    const auto one = spread(10);
    EXPECT_EQ(one.count("http-api-1") ? one.at("http-api-1") : 0, 10);

    // docker compose start http-api-2: both serve again.
    start_backend(backends_[1]);
    ASSERT_TRUE(wait_until([&] { return get().instance == "http-api-2"; }, kPatience))
        << sluice_->log();
    const auto both = spread(10);
    EXPECT_EQ(both.count("http-api-1") ? both.at("http-api-1") : 0, 5);
    EXPECT_EQ(both.count("http-api-2") ? both.at("http-api-2") : 0, 5);

    // docker compose stop http-api-1 http-api-2: the seed's 503, byte for byte.
    stop_backend(backends_[0]);
    stop_backend(backends_[1]);
    HttpReply reply;
    ASSERT_TRUE(wait_until([&] { return (reply = get()).status == 503; }, kPatience)) << reply.raw;
    EXPECT_EQ(reply.raw,
              "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\n\r\nService Unavailable");
    EXPECT_TRUE(wait_until([&] { return log_count("Healthy targets: 0") >= 1; }, kPatience));
}

// The README's drain from the Docker host: curl with the token, then traffic moves to the
// other instance; /enable brings it back.
TEST_F(ComposeTest, DrainFromTheHostWithTheToken) {
    ASSERT_TRUE(wait_until([&] { return log_count("Healthy targets: 2") >= 1; }, kPatience))
        << sluice_->log();
    const std::string name = "http-api-2:" + std::to_string(backends_[1].port);
    EXPECT_EQ(status_of(admin_request("POST", "/targets/" + name + "/drain", false)), 401);
    const std::string drained = admin_request("POST", "/targets/" + name + "/drain");
    ASSERT_EQ(status_of(drained), 200) << drained;
    const auto one = spread(10);
    EXPECT_EQ(one.count("http-api-1") ? one.at("http-api-1") : 0, 10);
    ASSERT_EQ(status_of(admin_request("POST", "/targets/" + name + "/enable")), 200);
    EXPECT_TRUE(wait_until([&] { return get().instance == "http-api-2"; }, kPatience));
}

TEST_F(ComposeTest, PostThenGetOnlyTheInstanceThatTookItListsTheSpell) {
    const HttpReply posted =
        http_request(port_, "POST", "/api/spells",
                     R"({"id": 3, "name": "Alohomora", "description": "Unlocking Charm"})");
    ASSERT_EQ(posted.status, 201) << posted.raw;
    ASSERT_FALSE(posted.instance.empty());
    for (int i = 0; i < 2; ++i) {  // one GET to each instance
        const HttpReply listed = get();
        ASSERT_EQ(listed.status, 200);
        EXPECT_EQ(listed.body.find("Alohomora") != std::string::npos,
                  listed.instance == posted.instance)
            << listed.instance << ": " << listed.body;
    }
}

}  // namespace
}  // namespace sluice::test
