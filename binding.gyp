{
  "targets": [
    {
      "target_name": "upfront_sock",
      "sources": ["native/upfront_sock.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
