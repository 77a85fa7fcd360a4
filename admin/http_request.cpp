#include "admin/http_request.hpp"

namespace sluice::admin {

std::string parse_request_line(std::string_view head, RequestLine& out) {
    std::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return "no space after the method";
    const size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return "no space after the target";
    if (sp1 == 0) return "no method";
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (target.empty()) return "no target";
    target = target.substr(0, target.find('?'));
    out.method = std::string(line.substr(0, sp1));
    out.path = std::string(target);
    return {};
}

}  // namespace sluice::admin
