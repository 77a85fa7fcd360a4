#include "common/log.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>

namespace sluice::log {
namespace {

std::atomic<const char*> g_role{"sluice"};
std::atomic<int> g_level{static_cast<int>(Level::info)};

const char* level_name(Level level) {
    switch (level) {
        case Level::error: return "error";
        case Level::warn: return "warn";
        case Level::notice: return "notice";
        case Level::info: return "info";
        case Level::debug: return "debug";
    }
    return "?";
}

}  // namespace

void set_role(const char* role) { g_role.store(role, std::memory_order_relaxed); }
void set_level(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool enabled(Level level) {
    return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void write(Level level, const char* fmt, ...) {
    const int saved_errno = errno;  // logging must not disturb the caller's errno
    char line[1024];
    timeval now{};
    gettimeofday(&now, nullptr);
    tm utc{};
    gmtime_r(&now.tv_sec, &utc);
    int len = std::snprintf(
        line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %s: ", utc.tm_year + 1900,
        utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
        static_cast<int>(now.tv_usec / 1000), g_role.load(std::memory_order_relaxed),
        static_cast<int>(getpid()), level_name(level));
    va_list args;
    va_start(args, fmt);
    int body = std::vsnprintf(line + len, sizeof line - len - 1, fmt, args);
    va_end(args);
    if (body < 0) body = 0;
    len += body;
    if (len > static_cast<int>(sizeof line) - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t ignored = ::write(STDERR_FILENO, line, len);
    (void)ignored;
    errno = saved_errno;
}

}  // namespace sluice::log
