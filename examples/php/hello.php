<?php
// The 2011 benchmark's Hello/N page for php-cgi behind upfront:
//   upfront run -n 2 --document-root examples/php --script-ext php -- php-cgi
//   curl 127.0.0.1:8080/hello.php/100      (PATH_INFO /100: 100 lines)
// php-cgi serves FastCGI on fd 0, the socket upfront hands it, one request at a
// time (without PHP_FCGI_CHILDREN; upfront runs N of them instead).
$n = 100;
if (isset($_SERVER['PATH_INFO']) && preg_match('#^/(\d+)$#', $_SERVER['PATH_INFO'], $m)) $n = (int)$m[1];
header('Content-Type: text/html; charset=utf-8');
echo "<!DOCTYPE html>\n<html><body>\n";
for ($i = 1; $i <= $n; $i++) echo "<p>Hello, World! line $i</p>\n";
echo "</body></html>\n";
