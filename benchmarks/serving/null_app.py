"""The floor: a bare ASGI app under uvicorn (httptools, uvloop) that reads the body and answers
`[]`. What the load generator, loopback and uvicorn cost with no framework and no model."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"[]"})
