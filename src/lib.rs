//! `hub`: a framework for XML-RPC hub services.
pub use hub_core as core;
pub use hub_xmlrpc as xmlrpc;
