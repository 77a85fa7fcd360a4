#include "conf/loader.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <toml.hpp>

#include "common/limits.hpp"
#include "conf/duration.hpp"
#include "conf/utf8.hpp"

namespace sluice {
namespace {

using Value = toml::value;
using group_t = struct group;

// Formats "FILE:LINE: message" followed by the offending line, as toml11 underlines it.
[[noreturn]] void fail(const std::string& file, const Value& at, const std::string& message) {
    const auto loc = at.location();
    std::ostringstream out;
    // toml11's report starts with an "[error] ..." headline; ours replaces it.
    const std::string excerpt = toml::format_error("", at, "here");
    const auto first_newline = excerpt.find('\n');
    out << file << ":" << loc.line() << ": " << message << "\n"
        << (first_newline == std::string::npos ? excerpt : excerpt.substr(first_newline + 1))
        << "\n";
    throw ConfigError(out.str());
}

[[noreturn]] void fail_at_line(const std::string& file, unsigned line, const std::string& message) {
    throw ConfigError(file + ":" + std::to_string(line) + ": " + message + "\n");
}

std::string type_name(const Value& v) {
    switch (v.type()) {
        case toml::value_t::boolean: return "a boolean";
        case toml::value_t::integer: return "an integer";
        case toml::value_t::floating: return "a float";
        case toml::value_t::string: return "a string";
        case toml::value_t::offset_datetime:
        case toml::value_t::local_datetime:
        case toml::value_t::local_date:
        case toml::value_t::local_time: return "a date or time";
        case toml::value_t::array: return "an array";
        case toml::value_t::table: return "a table";
        default: return "empty";
    }
}

// Walks one table: rejects keys it does not know, type-checks the ones it does.
class TableReader {
public:
    TableReader(const std::string& file, const Value& table, std::string where,
                std::set<std::string> known)
        : file_(file), table_(table), where_(std::move(where)) {
        for (const auto& [key, value] : table.as_table()) {
            if (known.count(key) == 0) {
                std::string list;
                for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
                fail(file, value,
                     "unknown key \"" + key + "\" in " + where_ + " (known keys: " + list + ")");
            }
        }
    }

    const Value* find(const std::string& key) const {
        const auto& t = table_.as_table();
        const auto it = t.find(key);
        return it == t.end() ? nullptr : &it->second;
    }

    // The string under `key`, or nullptr when absent. A value of another type is an error.
    const std::string* string(const std::string& key) const {
        const Value* v = find(key);
        if (v == nullptr) return nullptr;
        if (!v->is_string())
            fail(file_, *v, "\"" + key + "\" must be a string, found " + type_name(*v));
        return &v->as_string().str;
    }

    // A duration under `key` ("250ms", "5s"), left unchanged when absent.
    void duration(const std::string& key, Millis& out, Millis minimum) const {
        const std::string* text = string(key);
        if (text == nullptr) return;
        const std::string error = parse_duration(*text, out);
        if (!error.empty()) fail(file_, *find(key), "\"" + key + "\": " + error);
        if (out < minimum)
            fail(file_, *find(key),
                 "\"" + key + "\" must be at least " + std::to_string(minimum.count()) + "ms");
    }

    // One of the named `choices` under `key`; `fallback` when absent.
    template <typename T>
    T choice(const std::string& key, T fallback,
             std::initializer_list<std::pair<const char*, T>> choices) const {
        const std::string* text = string(key);
        if (text == nullptr) return fallback;
        std::string names;
        for (const auto& [name, value] : choices) {
            if (*text == name) return value;
            names += (names.empty() ? "" : ", ") + std::string(name);
        }
        fail(file_, *find(key),
             "\"" + key + "\" must be one of " + names + ", found \"" + *text + "\"");
    }

    // A boolean under `key`, left unchanged when absent.
    void boolean(const std::string& key, bool& out) const {
        const Value* v = find(key);
        if (v == nullptr) return;
        if (!v->is_boolean())
            fail(file_, *v, "\"" + key + "\" must be true or false, found " + type_name(*v));
        out = v->as_boolean();
    }

    // An integer under `key` within [low, high], left unchanged when absent.
    void integer(const std::string& key, int& out, int low, int high) const {
        const Value* v = find(key);
        if (v == nullptr) return;
        if (!v->is_integer())
            fail(file_, *v, "\"" + key + "\" must be an integer, found " + type_name(*v));
        const auto n = v->as_integer();
        if (n < low || n > high)
            fail(file_, *v,
                 "\"" + key + "\" must be between " + std::to_string(low) + " and " +
                     std::to_string(high));
        out = static_cast<int>(n);
    }

    const std::string& file() const { return file_; }

private:
    const std::string& file_;
    const Value& table_;
    std::string where_;
};

// `listen` and `admin` may name port 0: the kernel picks a free port, which the start-up log
// names (for tests that run many instances side by side).
net::HostPort host_port(const TableReader& reader, const std::string& key, const std::string& text,
                        bool port_zero_ok = false) {
    net::HostPort out;
    const std::string error = net::parse_host_port(text, out, port_zero_ok);
    if (!error.empty())
        fail(reader.file(), *reader.find(key), "\"" + key + "\" = \"" + text + "\": " + error);
    return out;
}

// One rule of expect_status: 200, "200", "2xx" or "200-299". Empty string: fine.
std::string parse_status_rule(const std::string& text, StatusRange& out) {
    auto number = [](const std::string& t, int& n) {
        if (t.size() != 3 || t.find_first_not_of("0123456789") != std::string::npos) return false;
        n = std::stoi(t);
        return n >= 100 && n <= 599;
    };
    if (text.size() == 3 && text[0] >= '1' && text[0] <= '5' && text.substr(1) == "xx") {
        out.low = (text[0] - '0') * 100;
        out.high = out.low + 99;
        return {};
    }
    const auto dash = text.find('-');
    if (dash == std::string::npos) {
        if (!number(text, out.low))
            return "\"" + text +
                   "\" is not a status (100-599), a class like \"2xx\" or a range like \"200-299\"";
        out.high = out.low;
        return {};
    }
    if (!number(text.substr(0, dash), out.low) || !number(text.substr(dash + 1), out.high) ||
        out.low > out.high)
        return "\"" + text + "\" is not a range of statuses like \"200-299\"";
    return {};
}

void read_expect_status(const std::string& file, const Value& v, HealthCheckConfig& out) {
    std::vector<const Value*> items;
    if (v.is_array()) {
        for (const Value& item : v.as_array()) items.push_back(&item);
        if (items.empty()) fail(file, v, "\"expect_status\" must not be empty");
    } else {
        items.push_back(&v);
    }
    out.expect_status.clear();
    for (const Value* item : items) {
        std::string text;
        if (item->is_integer())
            text = std::to_string(item->as_integer());
        else if (item->is_string())
            text = item->as_string().str;
        else
            fail(file, *item,
                 "\"expect_status\" takes statuses, classes (\"2xx\") or ranges (\"200-299\"), "
                 "found " +
                     type_name(*item));
        StatusRange range;
        const std::string error = parse_status_rule(text, range);
        if (!error.empty()) fail(file, *item, "\"expect_status\": " + error);
        out.expect_status.push_back(range);
    }
}

// Reads a [health_check] table over `out` (which holds the defaults to override).
void read_health_check(const std::string& file, const Value& v, HealthCheckConfig& out,
                       const std::string& where) {
    if (!v.is_table()) fail(file, v, "\"health_check\" must be a table, found " + type_name(v));
    const TableReader reader(file, v, where,
                             {"interval", "timeout", "rise", "fall", "expect_status"});
    reader.duration("interval", out.interval, Millis(10));
    reader.duration("timeout", out.timeout, Millis(1));
    reader.integer("rise", out.rise, 1, 100);
    reader.integer("fall", out.fall, 1, 100);
    if (const Value* expect = reader.find("expect_status")) read_expect_status(file, *expect, out);
}

TargetConfig read_target(const std::string& file, const Value& v, size_t number,
                         const Config& defaults) {
    const std::string where = "[[targets]] #" + std::to_string(number);
    if (!v.is_table()) fail(file, v, where + " must be a table, found " + type_name(v));
    const TableReader reader(file, v, where,
                             {"address", "health_check_endpoint", "health_check", "weight",
                              "max_connections", "send_proxy", "slow_start"});
    TargetConfig target;
    target.health_check = defaults.health_check;
    target.slow_start = defaults.slow_start;
    int weight = 1, cap = 0;
    reader.integer("weight", weight, 1, 256);
    reader.integer("max_connections", cap, 1, 1'000'000);
    target.weight = static_cast<uint32_t>(weight);
    target.max_connections = static_cast<uint32_t>(cap);
    reader.duration("slow_start", target.slow_start, Millis(0));
    target.send_proxy = reader.choice<ProxyProtocol>(
        "send_proxy", ProxyProtocol::none, {{"v1", ProxyProtocol::v1}, {"v2", ProxyProtocol::v2}});
    if (const Value* health = reader.find("health_check"))
        read_health_check(file, *health, target.health_check, where + " health_check");
    const std::string* address = reader.string("address");
    if (address == nullptr) fail(file, v, where + " has no \"address\" (HOST:PORT)");
    target.address = *address;
    target.host_port = host_port(reader, "address", *address);
    target.line = static_cast<int>(reader.find("address")->location().line());
    if (const std::string* endpoint = reader.string("health_check_endpoint")) {
        if (endpoint->empty() || endpoint->front() != '/')
            fail(file, *reader.find("health_check_endpoint"),
                 "\"health_check_endpoint\" must be a path starting with '/'");
        for (char c : *endpoint) {
            if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
                fail(file, *reader.find("health_check_endpoint"),
                     "\"health_check_endpoint\" must not contain spaces or control characters");
        }
        target.health_check_endpoint = *endpoint;
    }
    return target;
}

// `user` and `group`: names (or numbers) looked up now, so that a typo is a config error.
void read_identity(const TableReader& reader, Config& config) {
    if (const std::string* user = reader.string("user")) {
        const passwd* pw = getpwnam(user->c_str());
        if (pw == nullptr)
            fail(reader.file(), *reader.find("user"), "user \"" + *user + "\" does not exist");
        config.user = pw->pw_uid;
        config.group = pw->pw_gid;
        config.user_name = *user;
    }
    if (const std::string* group = reader.string("group")) {
        if (!config.user)
            fail(reader.file(), *reader.find("group"), "\"group\" needs \"user\" as well");
        const group_t* gr = getgrnam(group->c_str());
        if (gr == nullptr)
            fail(reader.file(), *reader.find("group"), "group \"" + *group + "\" does not exist");
        config.group = gr->gr_gid;
    }
}

// Whether `host` (a literal or "localhost") can only be reached from this machine.
bool is_loopback(const std::string& host) {
    if (host == "localhost") return true;
    in_addr v4{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// The token in `path`: one line of printable ASCII without spaces (it travels as
// "Authorization: Bearer TOKEN"), at least kMinTokenLength long; trailing CR/LF stripped.
// Returns "" and fills `token`, or what is wrong. A FIFO or device would block or never end
// the read, so only a regular file is read, and at most kMaxTokenFile bytes of it.
std::string read_token_file(const std::string& path, std::string& token) {
    constexpr size_t kMaxTokenFile = 4096, kMinTokenLength = 16;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return std::string("cannot open it: ") + std::strerror(errno);
    struct stat st {};
    std::string text(kMaxTokenFile + 1, '\0');
    ssize_t n = -1;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) n = ::read(fd, text.data(), text.size());
    const int read_errno = errno;
    ::close(fd);
    if (!S_ISREG(st.st_mode)) return "not a regular file";
    if (n < 0) return std::string("cannot read it: ") + std::strerror(read_errno);
    if (static_cast<size_t>(n) > kMaxTokenFile)
        return "longer than " + std::to_string(kMaxTokenFile) + " bytes";
    text.resize(static_cast<size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty()) return "the file is empty";
    for (const char c : text) {
        if (c <= ' ' || c >= 0x7f)
            return "the token must be one line of printable ASCII without spaces (it is sent "
                   "as \"Authorization: Bearer TOKEN\")";
    }
    if (text.size() < kMinTokenLength)
        return "the token has " + std::to_string(text.size()) + " characters; use at least " +
               std::to_string(kMinTokenLength) + " (for example: openssl rand -hex 32)";
    token = std::move(text);
    return {};
}

// `admin_token_file`: read now (and again at each reload); relative to the config's folder.
void read_admin_token(const TableReader& reader, Config& config) {
    const std::string* file = reader.string("admin_token_file");
    if (file == nullptr) return;
    const Value& at = *reader.find("admin_token_file");
    if (reader.find("admin") == nullptr)
        fail(reader.file(), at, "\"admin_token_file\" needs \"admin\" (the admin listener)");
    std::filesystem::path path(*file);
    if (path.is_relative()) path = std::filesystem::path(config.path).parent_path() / path;
    config.admin_token_file = path.string();
    const std::string error = read_token_file(config.admin_token_file, config.admin_token);
    if (!error.empty())
        fail(
            reader.file(), at,
            "\"admin_token_file\" = \"" + *file + "\" (" + config.admin_token_file + "): " + error);
}

// `admin`, `admin_allow_remote` and `admin_token_file`: the admin listener is loopback-only
// unless allowed, and allowed only with a token.
void read_admin(const TableReader& reader, Config& config) {
    reader.boolean("admin_allow_remote", config.admin_allow_remote);
    read_admin_token(reader, config);
    if (config.admin_allow_remote && config.admin_token.empty())
        fail(reader.file(), *reader.find("admin_allow_remote"),
             "\"admin_allow_remote\" = true needs \"admin_token_file\": every admin request "
             "must then carry \"Authorization: Bearer TOKEN\"");
    const std::string* admin = reader.string("admin");
    if (admin == nullptr) return;
    config.admin = host_port(reader, "admin", *admin, true);
    if (!config.admin_allow_remote && !is_loopback(config.admin->host))
        fail(reader.file(), *reader.find("admin"),
             "\"admin\" = \"" + *admin +
                 "\" is not a loopback address; the admin listener shows every target and "
                 "counter, so set admin_allow_remote = true to expose it");
}

// The [[targets]] array: at least one, at most kMaxTargets, no address twice.
void read_targets(const TableReader& reader, const std::string& file, Config& config) {
    const Value* targets = reader.find("targets");
    if (targets == nullptr)
        fail_at_line(file, 1, "no targets: add at least one [[targets]] table with an address");
    if (!targets->is_array())
        fail(file, *targets, "\"targets\" must be an array of tables ([[targets]])");
    const auto& list = targets->as_array();
    if (list.empty()) fail(file, *targets, "no targets: \"targets\" is empty");
    if (list.size() > kMaxTargets)
        fail(file, *targets, "too many targets (at most " + std::to_string(kMaxTargets) + ")");
    std::map<std::string, int> seen;  // normalised address -> line
    for (size_t i = 0; i < list.size(); ++i) {
        TargetConfig target = read_target(file, list[i], i + 1, config);
        const auto [it, inserted] = seen.emplace(target.host_port.canonical(), target.line);
        if (!inserted)
            fail(file, list[i].as_table().at("address"),
                 "duplicate target \"" + target.address + "\" (first defined at line " +
                     std::to_string(it->second) + ")");
        config.targets.push_back(std::move(target));
    }
}

// The listener, workers, time-outs and policies at the top level (targets excepted).
void read_top_level(const TableReader& reader, Config& config) {
    if (const std::string* listen = reader.string("listen"))
        config.listen = host_port(reader, "listen", *listen, true);
    if (reader.find("workers")) {
        int workers = 1;
        reader.integer("workers", workers, 1, static_cast<int>(kMaxWorkers));
        config.workers = static_cast<unsigned>(workers);
    }
    reader.duration("connect_timeout", config.connect_timeout, Millis(1));
    reader.duration("drain_timeout", config.drain_timeout, Millis(0));
    reader.duration("idle_timeout", config.idle_timeout, Millis(0));
    reader.duration("queue_timeout", config.queue_timeout, Millis(0));
    reader.duration("slow_start", config.slow_start, Millis(0));
    reader.duration("shutdown_timeout", config.shutdown_timeout, Millis(0));
    config.algorithm =
        reader.choice<Algorithm>("algorithm", Algorithm::round_robin,
                                 {{"round_robin", Algorithm::round_robin},
                                  {"least_connections", Algorithm::least_connections},
                                  {"random_two", Algorithm::random_two}});
    config.on_no_target = reader.choice<NoTargetReply>(
        "on_no_target", NoTargetReply::http_503,
        {{"http_503", NoTargetReply::http_503}, {"close", NoTargetReply::close}});
    config.relay = reader.choice<RelayMode>(
        "relay", RelayMode::automatic,
        {{"auto", RelayMode::automatic}, {"kernel", RelayMode::kernel}, {"user", RelayMode::user}});
    if (reader.find("max_connections")) {
        int cap = 0;
        reader.integer("max_connections", cap, 1, 10'000'000);
        config.max_connections = static_cast<uint64_t>(cap);
    }
    config.log_level = reader.choice<log::Level>("log_level", log::Level::info,
                                                 {{"error", log::Level::error},
                                                  {"warn", log::Level::warn},
                                                  {"notice", log::Level::notice},
                                                  {"info", log::Level::info},
                                                  {"debug", log::Level::debug}});
}

Config build(const Value& root, const std::string& file) {
    Config config;
    config.path = file;
    const TableReader reader(
        file, root, "the top level",
        {"listen",           "workers",   "connect_timeout", "idle_timeout",  "max_connections",
         "drain_timeout",    "algorithm", "on_no_target",    "queue_timeout", "slow_start",
         "shutdown_timeout", "user",      "group",           "admin",         "admin_allow_remote",
         "admin_token_file", "log_level", "health_check",    "relay",         "targets"});
    read_top_level(reader, config);
    read_identity(reader, config);
    read_admin(reader, config);
    if (const Value* health = reader.find("health_check"))
        read_health_check(file, *health, config.health_check, "[health_check]");
    read_targets(reader, file, config);
    return config;
}

// toml11's parser recurses once per level of nested arrays and inline tables, so a small
// file with thousands of levels would overflow the stack (and, on a reload, take the master
// down). Returns the line where nesting first passes `limit`, or 0. Skips strings and
// comments; good enough to bound the recursion, the parser still checks the syntax.
int line_too_deep(const std::string& text, int limit) {
    int depth = 0, line = 1;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n')
            ++line;
        else if (c == '#') {
            while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
        } else if (c == '"' || c == '\'') {
            const bool triple = text.compare(i, 3, std::string(3, c)) == 0;
            const std::string close = triple ? std::string(3, c) : std::string(1, c);
            for (i += close.size(); i < text.size(); ++i) {
                if (text[i] == '\n') {
                    ++line;
                    if (!triple) break;  // an unterminated string: the parser reports it
                }
                if (c == '"' && text[i] == '\\') {
                    ++i;
                    continue;
                }
                if (text.compare(i, close.size(), close) == 0) {
                    i += close.size() - 1;
                    break;
                }
            }
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return line;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return 0;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& name) {
    constexpr int kMaxNesting = 100;
    if (const int line = line_too_deep(text, kMaxNesting))
        throw ConfigError(name + ":" + std::to_string(line) +
                          ": arrays or tables nested deeper than " + std::to_string(kMaxNesting) +
                          " levels\n");
    // Before toml11 sees it: its own report of bad UTF-8 in a '...' string reads out of bounds.
    if (const size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
        const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<long>(bad), '\n');
        const size_t newline = text.rfind('\n', bad);  // text[bad] is not one
        const size_t column = newline == std::string::npos ? bad + 1 : bad - newline;
        throw ConfigError(name + ":" + std::to_string(line) +
                          ": TOML syntax error: not valid UTF-8 at column " +
                          std::to_string(column) + "\n");
    }
    std::istringstream stream(text);
    Value root;
    try {
        root = toml::parse(stream, name);
    } catch (const toml::syntax_error& e) {
        // toml11 already formats the location; lead with FILE:LINE like every other error.
        std::string what = e.what();
        if (what.empty() || what.back() != '\n') what += '\n';
        throw ConfigError(name + ":" + std::to_string(e.location().line()) +
                          ": TOML syntax error\n" + what);
    } catch (const std::exception& e) {
        throw ConfigError(name + ":1: cannot parse: " + e.what());
    }
    return build(root, name);
}

Config load_config(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw ConfigError(path + ": cannot read: it is a directory\n");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot open: " + std::strerror(errno) + "\n");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw ConfigError(path + ": cannot read: " + std::strerror(errno) + "\n");
    return parse_config(text.str(), path);
}

}  // namespace sluice
