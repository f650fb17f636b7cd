"""An envelope function: answers with its own status, headers and body (the Lambda envelope)."""
import json


def handler(body, request):
    if request["method"] == "GET":
        who = request["query"].get("name", "world")
        return {
            "statusCode": 200,
            "headers": {"content-type": "text/plain; charset=utf-8"},
            "body": f"Hello, {who}! You asked for {request['path']}\n",
        }
    if not isinstance(body, dict):
        return {"statusCode": 400, "body": {"error": "send a JSON object"}}
    return {"statusCode": 201, "headers": {"x-handled-by": "python"}, "body": json.dumps({"received": body})}
