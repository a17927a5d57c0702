#!/usr/bin/env python3
"""Orchestrates the Prometheus + Alertmanager end-to-end test (see e2e-prometheus.sh).

Standard library only. Every process listens on 127.0.0.1 and is stopped at the end.
"""
import argparse
import base64
import datetime
import glob
import gzip
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE_SECONDS = 180


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for(what, predicate, timeout=DEADLINE_SECONDS, interval=1.0):
    start = time.time()
    last_error = None
    while time.time() - start < timeout:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - report the last failure on timeout
            last_error = e
        time.sleep(interval)
    raise SystemExit(f"FAIL: timed out after {timeout}s waiting for {what} (last error: {last_error})")


class Webhook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            Webhook.received.append(json.loads(body))
        except ValueError:
            pass
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def rules_for_e2e(src_dir, dst_dir):
    """Copies alerts/ with every `for:` set to 0s, so the run does not wait minutes."""
    paths = []
    for path in sorted(glob.glob(os.path.join(src_dir, "*.yml")) + glob.glob(os.path.join(src_dir, "*.yaml"))):
        text = open(path).read()
        text = re.sub(r"(?m)^(\s*)for:\s*\S+\s*$", r"\1for: 0s", text)
        dst = os.path.join(dst_dir, os.path.basename(path))
        open(dst, "w").write(text)
        paths.append(dst)
    if not paths:
        raise SystemExit("FAIL: no rule files in alerts/")
    return paths


def alertmanager_for_e2e(src, dst, webhook_url):
    """The example routing config, with every receiver URL pointed at the local webhook and
    short grouping times."""
    text = open(src).read()
    text = re.sub(r"(?m)^(\s*-?\s*url:\s*).*$", lambda m: f"{m.group(1)}'{webhook_url}'", text)
    text = re.sub(r"(?m)^(\s*group_wait:\s*).*$", r"\g<1>1s", text)
    text = re.sub(r"(?m)^(\s*group_interval:\s*).*$", r"\g<1>1s", text)
    text = re.sub(r"(?m)^(\s*repeat_interval:\s*).*$", r"\g<1>1m", text)
    open(dst, "w").write(text)


def dashboard_queries(domain):
    """Every PromQL expression of the dashboards, with Grafana variables substituted."""
    queries = []
    for path in sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json"))):
        board = json.load(open(path))

        def walk(panels):
            for panel in panels:
                yield panel
                yield from walk(panel.get("panels", []))

        for panel in walk(board.get("panels", [])):
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if not expr:
                    continue
                for var, value in [
                    ("${domain}", domain), ("$domain", domain),
                    ("${job}", "mta-sts-exporter"), ("$job", "mta-sts-exporter"),
                    ("$__rate_interval", "1m"), ("${__rate_interval}", "1m"),
                    ("$__interval", "15s"), ("${__interval}", "15s"),
                    ("$__range", "5m"), ("${__range}", "5m"),
                ]:
                    expr = expr.replace(var, value)
                queries.append((os.path.basename(path), panel.get("title", "?"), expr))
        # Template variables: label_values(metric, label) must offer at least one value.
        for var in board.get("templating", {}).get("list", []):
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", query or "")
            if m:
                queries.append((os.path.basename(path), f"variable {var.get('name')}",
                                f"group by ({m.group(2)}) ({m.group(1)})"))
    return queries


def tlsrpt_mail(domain, mx):
    """A TLS-RPT report e-mail (RFC 8460 §5.3) for `domain`: a day of sessions, some of them
    failed on `mx`, as a JSON attachment."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now - datetime.timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    end = (now - datetime.timedelta(days=1)).strftime("%Y-%m-%dT23:59:59Z")
    report = {
        "organization-name": "E2E Sender",
        "date-range": {"start-datetime": start, "end-datetime": end},
        "contact-info": "tlsrpt@sender.example",
        "report-id": f"e2e-{int(now.timestamp())}",
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: enforce",
                       f"mx: {mx}", "max_age: 604800"], "policy-domain": domain, "mx-host": [mx]},
            "summary": {"total-successful-session-count": 95, "total-failure-session-count": 5},
            "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
                                 "receiving-mx-hostname": mx, "failed-session-count": 5}],
        }],
    }
    attachment = base64.encodebytes(json.dumps(report).encode()).decode().replace("\n", "\r\n")
    return ("From: tlsrpt@sender.example\r\nTo: tlsrpt@" + domain + "\r\n"
            "Subject: Report Domain: " + domain + " Submitter: sender.example\r\n"
            "TLS-Report-Domain: " + domain + "\r\nTLS-Report-Submitter: sender.example\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; boundary=\"b1\"; report-type=tlsrpt\r\n\r\n"
            "--b1\r\nContent-Type: text/plain\r\n\r\nA TLS report.\r\n"
            "--b1\r\nContent-Type: application/tlsrpt+json; name=\"report.json\"\r\n"
            "Content-Disposition: attachment; filename=\"report.json\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + attachment + "--b1--\r\n").encode()


def tlsrpt_report(domain, mx, end):
    """An RFC 8460 report as Google sends them: 1000 successful sessions and 200 failed with
    certificate-expired on `mx`, over the day ending at `end`."""
    def iso(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return {
        "organization-name": "Google Inc.",
        "date-range": {"start-datetime": iso(end - 86399), "end-datetime": iso(end)},
        "contact-info": "smtp-tls-reporting@google.com",
        "report-id": f"{iso(end - 86399)}_{domain}",
        "policies": [{
            "policy": {"policy-type": "sts", "policy-domain": domain, "mx-host": [mx],
                       "policy-string": ["version: STSv1", "mode: enforce", f"mx: {mx}", "max_age: 86400"]},
            "summary": {"total-successful-session-count": 1000, "total-failure-session-count": 200},
            "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "209.85.220.41",
                                 "receiving-mx-hostname": mx, "failed-session-count": 200}],
        }],
    }


def post_report(url, body):
    """POSTs a gzip report; returns the HTTP status."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/tlsrpt+gzip"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exporter", required=True)
    parser.add_argument("--simulator", required=True)
    # Every third simulated domain is broken, one scenario after another: 210 domains hold a
    # domain of each of the simulator's 66 broken scenarios.
    parser.add_argument("--domains", type=int, default=210)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="mta-sts-e2e-")
    procs = []

    def start(name, cmd, **kw):
        log = open(os.path.join(work, f"{name}.log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kw)
        procs.append((name, p))
        return p

    def stop_all():
        for _, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

    ok = False
    try:
        webhook_port = free_port()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", webhook_port), Webhook)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        fleet = os.path.join(work, "fleet")
        start("simulator", [args.simulator, "--domains", str(args.domains), "--dir", fleet])
        config = os.path.join(fleet, "config.yml")
        wait_for("the simulator's config", lambda: os.path.exists(config) and os.path.exists(os.path.join(fleet, "ready")), timeout=60)
        scenarios = json.load(open(os.path.join(fleet, "scenarios.json")))
        expiring = scenarios["mx_cert_expiring_5_days"]

        # TLS-RPT reports arrive by mail: a maildir the exporter reads, with one report for the
        # expiring domain (the domain dashboard's TLS-RPT row); a mail without a report is
        # dropped once Prometheus scrapes, so the refusals panel sees the counter rise.
        maildir = os.path.join(work, "maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        with open(config, "a") as f:
            f.write(f"\ntlsrpt:\n  maildir: {maildir}\n  maildir_interval: 1s\n")
        with open(os.path.join(maildir, "new", "1.report"), "wb") as f:
            f.write(tlsrpt_mail(expiring["domain"], expiring["mx"]))

        exporter_port = free_port()
        tlsrpt_port = free_port()
        start("exporter", [args.exporter, "--config.file", config,
                           "--web.listen-address", f"127.0.0.1:{exporter_port}",
                           "--tlsrpt.listen-address", f"127.0.0.1:{tlsrpt_port}"])
        exporter = f"http://127.0.0.1:{exporter_port}"
        wait_for("the exporter's first pass", lambda: get(exporter + "/-/ready").startswith("Ready"))

        am_port = free_port()
        am_config = os.path.join(work, "alertmanager.yml")
        alertmanager_for_e2e(os.path.join(ROOT, "deploy", "alertmanager", "alertmanager.yml"), am_config,
                             f"http://127.0.0.1:{webhook_port}/hook")
        start("alertmanager", ["prometheus-alertmanager", f"--config.file={am_config}",
                               f"--storage.path={os.path.join(work, 'am-data')}",
                               f"--web.listen-address=127.0.0.1:{am_port}",
                               "--cluster.listen-address="])
        wait_for("Alertmanager", lambda: get(f"http://127.0.0.1:{am_port}/-/ready"), timeout=60)

        rules_dir = os.path.join(work, "rules")
        os.makedirs(rules_dir)
        rules = rules_for_e2e(os.path.join(ROOT, "alerts"), rules_dir)
        prom_port = free_port()
        prom_config = os.path.join(work, "prometheus.yml")
        with open(prom_config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: {json.dumps(rules)}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{am_port}']
scrape_configs:
  - job_name: mta-sts-exporter
    static_configs:
      - targets: ['127.0.0.1:{exporter_port}']
""")
        start("prometheus", ["prometheus", f"--config.file={prom_config}",
                             f"--storage.tsdb.path={os.path.join(work, 'prom-data')}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"])
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for("Prometheus", lambda: get(prom + "/-/ready"), timeout=60)

        def query(expr):
            url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            reply = json.loads(get(url))
            if reply.get("status") != "success":
                raise RuntimeError(f"{expr}: {reply}")
            return reply["data"]["result"]

        wait_for("a scrape of the exporter", lambda: query('up{job="mta-sts-exporter"} == 1'))
        time.sleep(2)
        with open(os.path.join(maildir, "new", "2.junk"), "wb") as f:
            f.write(b"From: someone@example.net\r\nSubject: hello\r\n\r\nnot a report\r\n")

        # One TLS-RPT report for the domain the dashboards are queried for, posted as senders
        # do; its re-send is refused as a duplicate (the fleet dashboard's refusals panel).
        report = gzip.compress(json.dumps(tlsrpt_report(expiring["domain"], expiring["mx"],
                                                        int(time.time()) - 60)).encode())
        reports_url = f"http://127.0.0.1:{tlsrpt_port}/tlsrpt"
        for want in (201, 200):
            status = post_report(reports_url, report)
            if status != want:
                raise SystemExit(f"FAIL: POST /tlsrpt answered {status}, expected {want}")
        print(f"ok: a TLS-RPT report for {expiring['domain']} accepted, its re-send refused as a duplicate")

        def paged():
            for message in Webhook.received:
                for alert in message.get("alerts", []):
                    labels = alert.get("labels", {})
                    if (labels.get("alertname") == "MtaStsMxCertificateExpiry"
                            and labels.get("severity") == "critical"
                            and alert.get("status") == "firing"
                            and (labels.get("mx") == expiring["mx"] or labels.get("domain") == expiring["domain"])):
                        return alert
            return None

        alert = wait_for("MtaStsMxCertificateExpiry at severity=critical in the webhook", paged)
        print(f"ok: paged: {alert['labels']} — {alert.get('annotations', {}).get('summary', '')}")

        # Every alert that has a scenario in the simulator fires for that scenario's domain, and
        # those that must not fire (a fleet whose MX answer; a testing domain that is ready) do not.
        def firing(alertname, severity=None, domain=None):
            selector = f'alertname="{alertname}", alertstate="firing"'
            if severity:
                selector += f', severity="{severity}"'
            if domain:
                selector += f', domain="{domain}"'
            return query("ALERTS{" + selector + "}")

        def domain_of(scenario):
            if scenario not in scenarios:
                raise SystemExit(f"FAIL: the simulator's scenarios.json has no {scenario} (raise --domains)")
            return scenarios[scenario]["domain"]

        expected = [
            ("MtaStsMxCertificateExpiry", "critical", "mx_cert_expired"),
            ("MtaStsPolicyCertificateExpiry", "critical", "policy_cert_expiring"),
            ("MtaStsPolicyCertificateExpiry", "critical", "policy_cert_expired"),
            ("MtaStsEnforcedMxRefused", "critical", "mx_cert_expired"),
            ("MtaStsEnforcedMxRefused", "critical", "mx_not_covered"),
            ("MtaStsMxNotCovered", "warning", "mx_not_covered"),
            ("MtaStsPolicyUnavailable", "warning", "policy_not_found"),
            ("MtaStsPolicyUnavailable", "warning", "policy_cert_expired"),
            ("MtaStsRecordInvalid", "warning", "two_records"),
            ("MtaStsRecordInvalid", "warning", "bad_id"),
            ("MtaStsTlsRptMissing", "info", "tls_rpt_missing"),
            ("MtaStsTlsRptMissing", "info", "tls_rpt_invalid"),
        ]
        for alertname, severity, scenario in expected:
            domain = domain_of(scenario)
            wait_for(f"{alertname} at severity={severity} for {domain} ({scenario})",
                     lambda: firing(alertname, severity, domain), timeout=60)
        print(f"ok: {len(expected)} alerts fire on their scenarios")
        wait_for(f"MtaStsTlsRptFailureRatioHigh for {expiring['domain']} (the posted report)",
                 lambda: firing("MtaStsTlsRptFailureRatioHigh", "warning", expiring["domain"]), timeout=60)
        print("ok: MtaStsTlsRptFailureRatioHigh fires on the mailed and posted reports (205 of 1300 sessions failed)")
        silent = [
            ("MtaStsSmtpEgressBlocked", None),
            ("MtaStsExporterBlind", None),
            ("MtaStsDnsResolverFailing", None),
            ("MtaStsPolicyUnavailable", domain_of("no_record")),
            ("MtaStsTestingNotReady", domain_of("policy_testing")),
            ("MtaStsEnforcedMxRefused", domain_of("policy_testing")),
        ]
        noisy = [f"{name} {domain or ''}: {firing(name, None, domain)}" for name, domain in silent
                 if firing(name, None, domain)]
        if noisy:
            raise SystemExit("FAIL: alerts fire that must not:\n  " + "\n  ".join(noisy))
        print(f"ok: {len(silent)} alerts stay silent where they must")

        # Wait for rates to have two samples, then run every dashboard query.
        time.sleep(5)
        failures = []
        queries = dashboard_queries(expiring["domain"])
        if not queries:
            raise SystemExit("FAIL: no dashboard queries found in dashboards/")
        for board, title, expr in queries:
            try:
                if not query(expr):
                    failures.append(f"{board} / {title}: no series: {expr}")
            except Exception as e:  # noqa: BLE001
                failures.append(f"{board} / {title}: {e}")
        if failures:
            raise SystemExit("FAIL: dashboard queries:\n  " + "\n  ".join(failures))
        print(f"ok: all {len(queries)} dashboard queries return data")
        ok = True
    finally:
        stop_all()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}", file=sys.stderr)
            for name in ("exporter", "prometheus", "alertmanager", "simulator"):
                path = os.path.join(work, f"{name}.log")
                if os.path.exists(path):
                    print(f"--- {name}.log (tail)", file=sys.stderr)
                    print("".join(open(path).readlines()[-15:]), file=sys.stderr)
    print("e2e: passed")


if __name__ == "__main__":
    main()
