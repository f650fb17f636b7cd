"""The seed's simple function: greets whoever is named in the JSON body."""


def handler(body):
    name = body.get("name", "world") if isinstance(body, dict) else "world"
    print(f"greeting {name}")
    return {"message": f"Hello, {name}!"}
