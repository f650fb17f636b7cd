//! A function's shape: the calling convention its code was written for.
//!
//! Code written for this platform takes the parsed body (`handler(body, context)`); code brought
//! from another platform takes what that platform passes: a Lambda event, a Web `Request`, Node's
//! `(req, res)`, an OpenFaaS event, a WSGI environ or an ASGI scope. The Node and Python adapters
//! hold one module per shape (`prewarm/runtimes/*/shapes/`), each documenting its contract; the
//! platform only names the shape to the adapter and turns the envelope it answers with into HTTP
//! (`envelope`). A deploy names the shape or lets the adapter detect it when it loads the entry;
//! the shape found is stored with the version, so later workers never guess again.

use serde::{Deserialize, Serialize};

use crate::runtime::Runtime;

/// A calling convention. `Body` is this platform's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// `handler(body, context)`: the parsed body in, a value or a `{statusCode, …}` envelope out.
    Body,
    /// AWS Lambda behind a function URL or an HTTP API: `(event, context[, callback])`, the
    /// event in payload format 2.0.
    Lambda,
    /// AWS Lambda behind an API Gateway REST API (and Netlify's classic functions): the event in
    /// payload format 1.0, header case kept, `multiValueHeaders`.
    LambdaV1,
    /// Web `Request` in, `Response` out: Workers' `export default { fetch }`, Netlify's default
    /// export, Vercel's `export function GET`.
    Fetch,
    /// Node's `(req, res)`: Express and Connect apps, Google Cloud Functions, Vercel's Node handlers.
    NodeHttp,
    /// OpenFaaS templates: `handle(event, context)` (python3-http, node18/node20), `handle(req)`
    /// (classic python3).
    Openfaas,
    /// A Python function of Flask's `request` (Google Cloud Functions' Python).
    FlaskRequest,
    /// A Python `BaseHTTPRequestHandler` subclass (Vercel's Python functions).
    HttpHandler,
    /// A Python WSGI application (Flask, Django, Bottle).
    Wsgi,
    /// A Python ASGI application (FastAPI, Starlette, Quart).
    Asgi,
    /// Knative's `func`: Node's `handle(context, body)`, Python's `new()` whose instance's
    /// `handle` is ASGI.
    Knative,
    /// Appwrite: `({ req, res, log, error })` in Node, `main(context)` in Python.
    Appwrite,
    /// Fission: Node's `(context)` answering `{status, body}`, Python's `main()`.
    Fission,
    /// Apache OpenWhisk web actions: `main(params)`.
    Openwhisk,
}

impl Shape {
    pub const ALL: [Shape; 14] = [
        Shape::Body,
        Shape::Lambda,
        Shape::LambdaV1,
        Shape::Fetch,
        Shape::NodeHttp,
        Shape::Openfaas,
        Shape::FlaskRequest,
        Shape::HttpHandler,
        Shape::Wsgi,
        Shape::Asgi,
        Shape::Knative,
        Shape::Appwrite,
        Shape::Fission,
        Shape::Openwhisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Body => "body",
            Shape::Lambda => "lambda",
            Shape::LambdaV1 => "lambda-v1",
            Shape::Fetch => "fetch",
            Shape::NodeHttp => "node-http",
            Shape::Openfaas => "openfaas",
            Shape::FlaskRequest => "flask-request",
            Shape::HttpHandler => "http-handler",
            Shape::Wsgi => "wsgi",
            Shape::Asgi => "asgi",
            Shape::Knative => "knative",
            Shape::Appwrite => "appwrite",
            Shape::Fission => "fission",
            Shape::Openwhisk => "openwhisk",
        }
    }

    /// Whether a runtime's adapter serves this shape.
    pub fn runs_on(self, runtime: Runtime) -> bool {
        match self {
            Shape::Body => true,
            Shape::Lambda
            | Shape::LambdaV1
            | Shape::Openfaas
            | Shape::Knative
            | Shape::Appwrite
            | Shape::Fission
            | Shape::Openwhisk => runtime != Runtime::Dart,
            Shape::Fetch | Shape::NodeHttp => runtime == Runtime::Node,
            Shape::FlaskRequest | Shape::HttpHandler | Shape::Wsgi | Shape::Asgi => runtime == Runtime::Python,
        }
    }

    /// The shapes a runtime serves, for error messages.
    pub fn names_for(runtime: Runtime) -> Vec<&'static str> {
        Shape::ALL.into_iter().filter(|shape| shape.runs_on(runtime)).map(Shape::as_str).collect()
    }

    /// Whether the worker needs the headers as sent (case and repeats); the body shape reads the
    /// folded map only, and is spared the copy.
    pub fn wants_header_list(self) -> bool {
        self != Shape::Body
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
        let aliases = [("lambda-v2", Shape::Lambda), ("apigateway", Shape::LambdaV1), ("express", Shape::NodeHttp)];
        Shape::ALL
            .into_iter()
            .find(|shape| shape.as_str() == wanted)
            .or_else(|| aliases.into_iter().find(|(alias, _)| *alias == wanted).map(|(_, shape)| shape))
            .ok_or_else(|| {
                let names: Vec<_> = Shape::ALL.iter().map(|shape| shape.as_str()).collect();
                format!("unknown shape {name:?}: expected one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_from_their_names_and_aliases() {
        for shape in Shape::ALL {
            assert_eq!(shape.as_str().parse::<Shape>(), Ok(shape));
            assert_eq!(serde_json::to_value(shape).unwrap(), shape.as_str());
        }
        assert_eq!("Lambda_V1".parse::<Shape>(), Ok(Shape::LambdaV1));
        assert_eq!("express".parse::<Shape>(), Ok(Shape::NodeHttp));
        assert!("soap".parse::<Shape>().unwrap_err().contains("expected one of body, lambda"));
    }

    #[test]
    fn each_runtime_serves_its_own_shapes() {
        assert_eq!(Shape::names_for(Runtime::Dart), vec!["body"]);
        assert!(Shape::names_for(Runtime::Node).contains(&"node-http"));
        assert!(!Shape::names_for(Runtime::Node).contains(&"wsgi"));
        assert!(Shape::names_for(Runtime::Python).contains(&"asgi"));
        assert!(!Shape::names_for(Runtime::Python).contains(&"fetch"));
    }
}
