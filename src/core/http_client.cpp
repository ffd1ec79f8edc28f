// libcurl multi driver: see http_client.hpp for the contract.
#include "core/http_client.h"

#include "core/json_text.h"

#include <curl/curl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <mutex>

namespace dataflow {

struct HttpClient::Transfer {
    HttpRequest request;
    HttpResponse response;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    const NetPolicy* policy = nullptr;
    std::string host;
    std::string refusal;
    char errbuf[CURL_ERROR_SIZE] = {0};
    std::chrono::steady_clock::time_point started;

    ~Transfer() {
        if (easy != nullptr) curl_easy_cleanup(easy);
        if (headers != nullptr) curl_slist_free_all(headers);
    }
};

namespace {

using Transfer = HttpClient::Transfer;

size_t on_body(char* data, size_t size, size_t count, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    size_t n = size * count;
    std::string& body = t->response.body;
    if (body.size() + n > t->request.max_body) {
        body.append(data, t->request.max_body - body.size());
        t->response.too_large = true;
        return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    body.append(data, n);
    return n;
}

curl_socket_t on_open_socket(void* userp, curlsocktype purpose, struct curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(userp);
    if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
    IpAddress ip;
    if (!ip_from_sockaddr(&address->addr, &ip)) {
        t->refusal = "refused: unsupported address family";
        return CURL_SOCKET_BAD;
    }
    std::string why;
    if (!t->policy->address_allowed(ip, t->host, &why)) {
        t->refusal = "refused: " + why;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

int HttpClient::on_socket(void* /*easy*/, int fd, int what, void* client, void* /*socketp*/) {
    auto* self = static_cast<HttpClient*>(client);
    if (what == CURL_POLL_REMOVE)
        self->sockets_.erase(fd);
    else
        self->sockets_[fd] = what;
    return 0;
}

int HttpClient::on_timer(void* /*multi*/, long timeout_ms, void* client) {
    auto* self = static_cast<HttpClient*>(client);
    if (timeout_ms < 0) {
        self->timer_set_ = false;
    } else {
        self->timer_set_ = true;
        self->deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    }
    return 0;
}

HttpClient::HttpClient(NetPolicy policy, size_t window)
    : policy_(std::move(policy)), window_(window ? window : 1) {
    global_init();
    CURLM* m = curl_multi_init();
    multi_ = m;
    if (m == nullptr) return;
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &HttpClient::on_socket);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &HttpClient::on_timer);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, this);
}

HttpClient::~HttpClient() {
    abort_all();
    if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void HttpClient::abort_all() {
    for (auto& entry : transfers_)
        curl_multi_remove_handle(static_cast<CURLM*>(multi_), entry.second->easy);
    transfers_.clear();
}

std::string HttpClient::start(HttpRequest request) {
    if (multi_ == nullptr) return "curl_multi_init failed";
    if (free_slots() == 0) return "HTTP window full";
    auto t = std::make_unique<Transfer>();
    std::string bad = check_url(request.url, &t->host);
    if (!bad.empty()) return bad;
    for (const auto& h : request.headers)
        if (!valid_header(h.first, h.second)) return "invalid header \"" + h.first + "\"";
    if (!valid_header("x", request.username) || !valid_header("x", request.password))
        return "credentials contain control characters";
    t->request = std::move(request);
    t->policy = &policy_;
    t->response.tag = t->request.tag;
    CURL* e = curl_easy_init();
    if (e == nullptr) return "curl_easy_init failed";
    t->easy = e;
    const HttpRequest& r = t->request;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");  // ignore http_proxy & co. from the environment
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     r.connect_timeout_ms > 0 ? r.connect_timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r.timeout_ms > 0 ? r.timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.max_body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
    curl_easy_setopt(e, CURLOPT_USERAGENT, "pg_dataflow");
    if (r.basic_auth) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
        curl_easy_setopt(e, CURLOPT_USERNAME, r.username.c_str());
        curl_easy_setopt(e, CURLOPT_PASSWORD, r.password.c_str());
    }
    if (r.method == "GET") {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
        if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue round trip
    for (const auto& h : r.headers) {
        std::string line = h.first + ": " + h.second;
        curl_slist* next = curl_slist_append(t->headers, line.c_str());
        if (next == nullptr) return "out of memory";
        t->headers = next;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    t->started = std::chrono::steady_clock::now();
    if (curl_multi_add_handle(static_cast<CURLM*>(multi_), e) != CURLM_OK)
        return "curl_multi_add_handle failed";
    transfers_[e] = std::move(t);
    return "";
}

std::vector<WaitSocket> HttpClient::sockets() const {
    std::vector<WaitSocket> out;
    for (const auto& s : sockets_) {
        bool r = s.second == CURL_POLL_IN || s.second == CURL_POLL_INOUT;
        bool w = s.second == CURL_POLL_OUT || s.second == CURL_POLL_INOUT;
        if (r || w) out.push_back(WaitSocket{s.first, r, w});
    }
    return out;
}

long HttpClient::timeout_ms() const {
    if (!timer_set_) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<long>(left.count()) + 1;
}

void HttpClient::socket_ready(int fd, bool readable, bool writable) {
    if (multi_ == nullptr) return;
    int mask = (readable ? CURL_CSELECT_IN : 0) | (writable ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(static_cast<CURLM*>(multi_), fd, mask, &running);
    collect();
}

void HttpClient::drive() {
    if (multi_ == nullptr) return;
    if (timer_set_ && std::chrono::steady_clock::now() >= deadline_) {
        timer_set_ = false;
        int running = 0;
        curl_multi_socket_action(static_cast<CURLM*>(multi_), CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect();
}

void HttpClient::collect() {
    CURLM* m = static_cast<CURLM*>(multi_);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        auto it = transfers_.find(msg->easy_handle);
        if (it == transfers_.end()) continue;
        Transfer& t = *it->second;
        CURLcode rc = msg->data.result;
        HttpResponse& resp = t.response;
        long status = 0;
        curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
        resp.received_unix = static_cast<int64_t>(std::time(nullptr));
        curl_header* retry_after = nullptr;
        if (status != 0 &&
            curl_easy_header(t.easy, "Retry-After", 0, CURLH_HEADER, -1, &retry_after) ==
                CURLHE_OK &&
            retry_after->value != nullptr)
            resp.retry_after.assign(retry_after->value, strnlen(retry_after->value, 128));
        resp.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t.started).count();
        long request_size = 0;
        curl_easy_getinfo(t.easy, CURLINFO_REQUEST_SIZE, &request_size);
        resp.sent = request_size > 0 || status != 0;
        if (rc == CURLE_OK) {
            resp.status = status;
        } else if (resp.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            resp.too_large = true;
            resp.status = status;
            resp.error = "response body exceeds " + std::to_string(t.request.max_body) + " bytes";
        } else {
            resp.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
            resp.refused = !t.refusal.empty();
            resp.error = resp.refused
                             ? t.refusal
                             : (t.errbuf[0] ? std::string(t.errbuf) : curl_easy_strerror(rc));
        }
        curl_multi_remove_handle(m, t.easy);
        finished_.push_back(std::move(resp));
        transfers_.erase(it);
    }
}

std::vector<HttpResponse> HttpClient::take_finished() {
    std::vector<HttpResponse> out;
    out.swap(finished_);
    return out;
}

std::vector<HttpResponse> HttpClient::take_finished_if(
    const std::function<bool(const HttpResponse&)>& pick) {
    std::vector<HttpResponse> out, keep;
    for (HttpResponse& r : finished_) (pick(r) ? out : keep).push_back(std::move(r));
    finished_.swap(keep);
    return out;
}

bool HttpClient::poll_once(int max_wait_ms, int extra_fd) {
    std::vector<pollfd> fds;
    for (const WaitSocket& s : sockets())
        fds.push_back(
            pollfd{s.fd, static_cast<short>((s.read ? POLLIN : 0) | (s.write ? POLLOUT : 0)), 0});
    if (extra_fd >= 0) fds.push_back(pollfd{extra_fd, POLLIN, 0});
    long wait = timeout_ms();
    if (wait < 0 || wait > max_wait_ms) wait = max_wait_ms;
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(wait));
    bool extra = false;
    if (n > 0) {
        for (const pollfd& p : fds) {
            if (p.revents == 0) continue;
            if (p.fd == extra_fd) {
                extra = true;
                continue;
            }
            bool err = p.revents & (POLLERR | POLLHUP | POLLNVAL);
            socket_ready(p.fd, (p.revents & POLLIN) || err, (p.revents & POLLOUT) || err);
        }
    }
    drive();
    return extra;
}

namespace {

constexpr int64_t kSaturate = int64_t{1} << 40;  // "forever", far beyond any cap

// Reads exactly n digits at s[*pos]; advances *pos.
bool digits(const std::string& s, size_t* pos, size_t n, int* out) {
    if (*pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
        char c = s[*pos + i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *pos += n;
    *out = v;
    return true;
}

bool literal(const std::string& s, size_t* pos, const char* text) {
    size_t n = std::strlen(text);
    if (s.compare(*pos, n, text) != 0) return false;
    *pos += n;
    return true;
}

// Index (0-based) of the 3-letter name at s[*pos] in `names`; advances *pos.
int name3(const std::string& s, size_t* pos, const char* const* names, int count) {
    for (int i = 0; i < count; ++i)
        if (s.compare(*pos, 3, names[i]) == 0) {
            *pos += 3;
            return i;
        }
    return -1;
}

const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
const char* const kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
const char* const kLongDays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                 "Friday", "Saturday", "Sunday"};

bool clock_time(const std::string& s, size_t* pos, int* h, int* m, int* sec) {
    return digits(s, pos, 2, h) && literal(s, pos, ":") && digits(s, pos, 2, m) &&
           literal(s, pos, ":") && digits(s, pos, 2, sec) && *h < 24 && *m < 60 && *sec <= 60;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool valid_day(int year, int month, int day) {
    static const int kLength[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last = kLength[month] + (month == 1 && leap ? 1 : 0);
    return day >= 1 && day <= last;
}

// An HTTP-date in one of its three forms, as Unix seconds.
bool parse_http_date(const std::string& s, int64_t* out) {
    size_t pos = 0;
    int day = 0, month = -1, year = 0, h = 0, m = 0, sec = 0;
    if (s.size() == 29 && s[3] == ',') {  // IMF-fixdate
        if (name3(s, &pos, kDays, 7) < 0 || !literal(s, &pos, ", ") || !digits(s, &pos, 2, &day) ||
            !literal(s, &pos, " ") || (month = name3(s, &pos, kMonths, 12)) < 0 ||
            !literal(s, &pos, " ") || !digits(s, &pos, 4, &year) || !literal(s, &pos, " ") ||
            !clock_time(s, &pos, &h, &m, &sec) || !literal(s, &pos, " GMT"))
            return false;
    } else if (s.find(',') != std::string::npos) {  // RFC 850, two-digit year
        bool named = false;
        for (const char* d : kLongDays)
            if (literal(s, &pos, d)) {
                named = true;
                break;
            }
        int yy = 0;
        if (!named || !literal(s, &pos, ", ") || !digits(s, &pos, 2, &day) ||
            !literal(s, &pos, "-") || (month = name3(s, &pos, kMonths, 12)) < 0 ||
            !literal(s, &pos, "-") || !digits(s, &pos, 2, &yy) || !literal(s, &pos, " ") ||
            !clock_time(s, &pos, &h, &m, &sec) || !literal(s, &pos, " GMT"))
            return false;
        year = yy < 70 ? 2000 + yy : 1900 + yy;
    } else if (s.size() == 24) {  // asctime: "Sun Nov  6 08:49:37 1994"
        if (name3(s, &pos, kDays, 7) < 0 || !literal(s, &pos, " ") ||
            (month = name3(s, &pos, kMonths, 12)) < 0 || !literal(s, &pos, " "))
            return false;
        if (s[pos] == ' ') {
            ++pos;
            if (!digits(s, &pos, 1, &day)) return false;
        } else if (!digits(s, &pos, 2, &day)) {
            return false;
        }
        if (!literal(s, &pos, " ") || !clock_time(s, &pos, &h, &m, &sec) ||
            !literal(s, &pos, " ") || !digits(s, &pos, 4, &year))
            return false;
    } else {
        return false;
    }
    if (pos != s.size() || !valid_day(year, month, day)) return false;
    *out = days_from_civil(year, month + 1, day) * 86400 + h * 3600 + m * 60 + sec;
    return true;
}

}  // namespace

std::optional<int64_t> parse_retry_after(const std::string& value, int64_t now_unix) {
    size_t b = value.find_first_not_of(" \t"), e = value.find_last_not_of(" \t");
    if (b == std::string::npos) return std::nullopt;
    std::string v = value.substr(b, e - b + 1);
    if (v.find_first_not_of("0123456789") == std::string::npos) {
        int64_t seconds = 0;
        for (char c : v) {
            seconds = seconds * 10 + (c - '0');
            if (seconds >= kSaturate) return kSaturate;
        }
        return seconds;
    }
    int64_t at = 0;
    if (!parse_http_date(v, &at)) return std::nullopt;
    return at <= now_unix ? 0 : std::min(at - now_unix, kSaturate);
}

std::optional<int64_t> requested_retry_delay(const HttpResponse& r, int64_t max_seconds) {
    if ((r.status != 429 && r.status != 503) || r.retry_after.empty()) return std::nullopt;
    std::optional<int64_t> wait = parse_retry_after(r.retry_after, r.received_unix);
    if (!wait) return std::nullopt;
    return std::max<int64_t>(1, std::min(*wait, max_seconds));
}

std::string response_error(const HttpResponse& r) {
    if (r.status == 0) return r.error.empty() ? "no response" : r.error;
    std::string e = "HTTP " + std::to_string(r.status);
    if (r.status >= 300 && r.status <= 399) e += " (redirects are not followed)";
    if (!r.error.empty()) e += " (" + r.error + ")";
    std::string excerpt = body_excerpt(r.body);
    if (!excerpt.empty()) e += ": " + excerpt;
    return e;
}

std::string body_excerpt(const std::string& body, size_t max) {
    // Error texts end up in text columns: a byte PostgreSQL would refuse as UTF-8
    // must not fail the transaction that records the attempt (and so resend it).
    std::string out;
    size_t i = 0;
    while (i < body.size()) {
        size_t len = utf8_length(body, i);
        if (out.size() + (len ? len : 1) > max) break;
        unsigned char c = static_cast<unsigned char>(body[i]);
        if (len == 0)
            out += '?';
        else if (len == 1 && (c < 0x20 || c == 0x7F))
            out += ' ';
        else
            out.append(body, i, len);
        i += len ? len : 1;
    }
    if (i < body.size()) out += "...";
    return out;
}

}  // namespace dataflow
