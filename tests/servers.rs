//! Real servers inside one sandbox, reached by real clients in the same
//! sandbox over the sentry's own TCP/IP stack: Redis with redis-cli, and
//! nginx (two workers, sendfile) with curl. The same scripts run natively
//! print the same.

use integration_tests::*;

fn have(bin: &str) -> bool {
    std::path::Path::new(bin).exists()
}

fn skip_or_fail(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is not installed (.ci/run installs it)");
    }
    eprintln!("{what} missing: skipped");
}

#[test]
fn redis_server_and_cli() {
    if !have("/usr/bin/redis-server") || !have("/usr/bin/redis-cli") {
        return skip_or_fail("redis-server");
    }
    let port = 20000 + std::process::id() % 10000;
    let script = format!(
        "d=$(mktemp -d); redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
           --dir $d > $d/log 2>&1 & \
         for i in $(seq 50); do redis-cli -p {port} ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done; \
         redis-cli -p {port} set k hello; redis-cli -p {port} get k; \
         redis-cli -p {port} incr n; redis-cli -p {port} incr n; \
         redis-cli -p {port} rpush l a b c; redis-cli -p {port} lrange l 0 -1; \
         redis-cli -p {port} shutdown nosave 2>/dev/null; wait; rm -rf $d"
    );
    let o = assert_same_spec(&sh(&script));
    assert_eq!(o.stdout_str(), "OK\nhello\n1\n2\n3\na\nb\nc\n");
}

#[test]
fn nginx_serves_curl() {
    if !have("/usr/sbin/nginx") || !have("/usr/bin/curl") {
        return skip_or_fail("nginx or curl");
    }
    let port = 30000 + std::process::id() % 10000;
    // Everything nginx writes goes to a scratch directory.
    let script = format!(
        "d=$(mktemp -d); chmod 755 $d; mkdir $d/www; echo 'hello from nginx' > $d/www/index.html; \
         head -c 300000 /dev/zero | tr '\\0' x > $d/www/big.txt; \
         printf 'worker_processes 2; daemon off; error_log %s/err warn; pid %s/pid;\\n\
events {{ worker_connections 64; }}\\n\
http {{ access_log off; sendfile on; client_body_temp_path %s/b; proxy_temp_path %s/p;\\n\
fastcgi_temp_path %s/f; uwsgi_temp_path %s/u; scgi_temp_path %s/s;\\n\
server {{ listen 127.0.0.1:{port}; root %s/www; }} }}\\n' $d $d $d $d $d $d $d $d > $d/nginx.conf; \
         nginx -c $d/nginx.conf & \
         for i in $(seq 50); do curl -sf http://127.0.0.1:{port}/ >/dev/null && break; sleep 0.1; done; \
         curl -s http://127.0.0.1:{port}/; \
         curl -s -o /dev/null -w '%{{http_code}}\\n' http://127.0.0.1:{port}/missing; \
         curl -s http://127.0.0.1:{port}/big.txt | wc -c; \
         ok=0; for i in $(seq 30); do curl -sf http://127.0.0.1:{port}/ >/dev/null && ok=$((ok+1)); done; echo $ok; \
         kill $(cat $d/pid); wait; rm -rf $d"
    );
    let o = assert_same_spec(&sh(&script).timeout(std::time::Duration::from_secs(120)));
    assert_eq!(o.stdout_str(), "hello from nginx\n404\n300000\n30\n");
}

#[test]
fn mariadb_creates_and_queries_an_innodb_table() {
    if !have("/usr/sbin/mariadbd") || !have("/usr/bin/mariadb") {
        return skip_or_fail("mariadb-server");
    }
    let port = 40000 + std::process::id() % 10000;
    // A fresh data directory, the server on a Unix socket and TCP
    // loopback, an InnoDB table through both, a clean shutdown.
    let script = format!(
        "d=$(mktemp -d); \
         mariadb-install-db --user=root --datadir=$d/data --auth-root-authentication-method=normal \
           > $d/install.log 2>&1 || {{ echo install failed; cat $d/install.log; exit 1; }}; \
         mariadbd --no-defaults --user=root --datadir=$d/data --socket=$d/sock --port={port} \
           --bind-address=127.0.0.1 --pid-file=$d/pid --log-error=$d/err \
           --innodb-buffer-pool-size=16M > /dev/null 2>&1 & \
         for i in $(seq 150); do mariadb -uroot --socket=$d/sock -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done; \
         mariadb -uroot --socket=$d/sock -e \"create database t; use t; \
           create table x (id int primary key auto_increment, v varchar(20)) engine=innodb; \
           insert into x (v) values ('a'),('b'),('c'); select count(*), group_concat(v) from x;\"; \
         mariadb -uroot -h127.0.0.1 -P{port} -N -e \"select engine from information_schema.tables where table_name='x'\"; \
         mariadb-admin -uroot --socket=$d/sock shutdown; wait; rm -rf $d"
    );
    let o = assert_same_spec(&sh(&script).timeout(std::time::Duration::from_secs(240)));
    assert_eq!(
        o.stdout_str(),
        "count(*)\tgroup_concat(v)\n3\ta,b,c\nInnoDB\n"
    );
}
