"""The slice of the Dataverse (Dynamics 365) Web API schema the stand-in enforces, as Microsoft publishes it.

Sources (Microsoft's own entity reference, MicrosoftDocs/dynamics-365-customer-engagement on GitHub, mirrored at
learn.microsoft.com):
- contact:  ce/customerengagement/on-premises/developer/entities/contact.md
  (https://learn.microsoft.com/dynamics365/customerengagement/on-premises/developer/entities/contact)
- incident: ce/customerengagement/on-premises/developer/entities/incident.md
  (https://learn.microsoft.com/dynamics365/customerengagement/on-premises/developer/entities/incident)
- annotation, incidentresolution: the same reference, annotation.md and incidentresolution.md
- CloseIncident action: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/closeincident
  (parameters IncidentResolution: incidentresolution, Status: Edm.Int32; returns nothing)
- Web API conventions: "Query data using the Web API" (system query options $select, $filter, $orderby, $top,
  filter operators eq ne gt ge lt le and or not, functions contains startswith endswith); "Lookup properties"
  (a Lookup attribute `x` is read as `_x_value`, Edm.Guid, and written through a single-valued navigation
  property with `x_<entity>@odata.bind`); "Troubleshoot Dataverse Web API client errors" (error bodies
  `{"error": {"code": "0x0", "message": "Could not find a property named 'Name' on type
  'Microsoft.Dynamics.CRM.account'."}}`, unknown entity set: 404 code 0x8006088a "Resource not found for the
  segment 'Account'.").
- OAuth: "Use OAuth authentication with Microsoft Dataverse" and the Microsoft identity platform client
  credentials flow (POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token, form fields
  grant_type=client_credentials, client_id, client_secret, scope={org}/.default; reply token_type, expires_in,
  ext_expires_in, access_token; errors `{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}`).

Only the attributes this project touches plus their common neighbours are listed; the names and types are
copied from the reference (LogicalName, Type), never invented. A name outside these lists is refused the way
Dataverse refuses a name that is not in its $metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Dataverse attribute Type -> the Edm type the Web API exposes it as.
EDM = {"String": "Edm.String", "Memo": "Edm.String", "Uniqueidentifier": "Edm.Guid", "Lookup": "Edm.Guid",
       "Customer": "Edm.Guid", "Owner": "Edm.Guid", "Picklist": "Edm.Int32", "State": "Edm.Int32",
       "Status": "Edm.Int32", "Integer": "Edm.Int32", "DateTime": "Edm.DateTimeOffset", "Boolean": "Edm.Boolean",
       "Double": "Edm.Double", "BigInt": "Edm.Int64"}


@dataclass(frozen=True)
class Attribute:
    logical_name: str
    type: str  # the Dataverse attribute Type from the reference
    create: bool = True  # IsValidForCreate
    update: bool = True  # IsValidForUpdate
    max_length: int | None = None
    options: frozenset[int] = frozenset()  # Picklist / State / Status values

    @property
    def lookup(self) -> bool:
        return self.type in ("Lookup", "Customer", "Owner")

    @property
    def web_name(self) -> str:
        """The Web API property: lookups read as `_x_value`."""
        return f"_{self.logical_name}_value" if self.lookup else self.logical_name

    @property
    def edm(self) -> str:
        return EDM[self.type]


@dataclass(frozen=True)
class Entity:
    logical_name: str
    entity_set: str
    primary_id: str
    attributes: dict[str, Attribute]
    # single-valued navigation properties usable with @odata.bind: name -> (target entity set, lookup attribute)
    navigation: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"

    def property(self, web_name: str) -> Attribute | None:
        for a in self.attributes.values():
            if a.web_name == web_name:
                return a
        return None


def _entity(logical: str, entity_set: str, primary: str, attrs: list[Attribute],
            navigation: dict[str, tuple[str, str]] | None = None) -> Entity:
    return Entity(logical, entity_set, primary, {a.logical_name: a for a in attrs}, navigation or {})


S, M = "String", "Memo"
RO = {"create": False, "update": False}

CONTACT = _entity("contact", "contacts", "contactid", [
    Attribute("contactid", "Uniqueidentifier", update=False),
    Attribute("firstname", S, max_length=50),
    Attribute("middlename", S, max_length=50),
    Attribute("lastname", S, max_length=50),
    Attribute("fullname", S, max_length=160, **RO),
    Attribute("nickname", S, max_length=100),
    Attribute("salutation", S, max_length=100),
    Attribute("jobtitle", S, max_length=100),
    Attribute("telephone1", S, max_length=50),  # Business Phone
    Attribute("telephone2", S, max_length=50),  # Home Phone
    Attribute("telephone3", S, max_length=50),
    Attribute("mobilephone", S, max_length=50),
    Attribute("fax", S, max_length=50),
    Attribute("emailaddress1", S, max_length=100),
    Attribute("emailaddress2", S, max_length=100),
    Attribute("emailaddress3", S, max_length=100),
    Attribute("address1_line1", S, max_length=250),
    Attribute("address1_line2", S, max_length=250),
    Attribute("address1_line3", S, max_length=250),
    Attribute("address1_city", S, max_length=80),
    Attribute("address1_stateorprovince", S, max_length=50),
    Attribute("address1_postalcode", S, max_length=20),
    Attribute("address1_country", S, max_length=80),
    Attribute("address1_latitude", "Double"),
    Attribute("address1_longitude", "Double"),
    Attribute("address1_composite", M, max_length=1000, **RO),
    Attribute("description", M, max_length=2000),
    Attribute("preferredcontactmethodcode", "Picklist", options=frozenset({1, 2, 3, 4, 5})),
    Attribute("donotphone", "Boolean"),
    Attribute("parentcustomerid", "Customer"),
    Attribute("ownerid", "Owner"),
    Attribute("createdon", "DateTime", **RO),
    Attribute("modifiedon", "DateTime", **RO),
    Attribute("statecode", "State", create=False, options=frozenset({0, 1})),  # Active, Inactive
    Attribute("statuscode", "Status", options=frozenset({1, 2})),
    Attribute("versionnumber", "BigInt", **RO),
])

INCIDENT = _entity("incident", "incidents", "incidentid", [
    Attribute("incidentid", "Uniqueidentifier", update=False),
    Attribute("ticketnumber", S, max_length=100, update=False),
    Attribute("title", S, max_length=200),
    Attribute("description", M, max_length=2000),
    Attribute("customerid", "Customer"),
    Attribute("primarycontactid", "Lookup"),
    Attribute("parentcaseid", "Lookup"),
    Attribute("subjectid", "Lookup"),
    Attribute("ownerid", "Owner"),
    Attribute("caseorigincode", "Picklist", options=frozenset({1, 2, 3, 2483, 3986})),  # Phone Email Web ...
    Attribute("casetypecode", "Picklist", options=frozenset({1, 2, 3})),  # Question Problem Request
    Attribute("prioritycode", "Picklist", options=frozenset({1, 2, 3})),  # High Normal Low
    Attribute("severitycode", "Picklist", options=frozenset({1})),
    Attribute("emailaddress", S, max_length=100),
    Attribute("isescalated", "Boolean"),
    Attribute("followupby", "DateTime"),
    Attribute("resolveby", "DateTime"),
    Attribute("createdon", "DateTime", **RO),
    Attribute("modifiedon", "DateTime", **RO),
    # statecode: 0 Active, 1 Resolved, 2 Canceled; not valid for create.
    Attribute("statecode", "State", create=False, options=frozenset({0, 1, 2})),
    # statuscode: 1 In Progress, 2 On Hold, 3 Waiting for Details, 4 Researching (state 0); 5 Problem Solved,
    # 1000 Information Provided (state 1); 6 Canceled, 2000 Merged (state 2).
    Attribute("statuscode", "Status", options=frozenset({1, 2, 3, 4, 5, 6, 1000, 2000})),
    Attribute("versionnumber", "BigInt", **RO),
], navigation={"customerid_contact": ("contacts", "customerid"), "customerid_account": ("accounts", "customerid"),
               "primarycontactid": ("contacts", "primarycontactid")})

INCIDENT_STATUS_STATE = {1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 1000: 1, 6: 2, 2000: 2}
INCIDENT_STATE_LABEL = {0: "Active", 1: "Resolved", 2: "Canceled"}
INCIDENT_STATUS_LABEL = {1: "In Progress", 2: "On Hold", 3: "Waiting for Details", 4: "Researching",
                         5: "Problem Solved", 1000: "Information Provided", 6: "Canceled", 2000: "Merged"}

ANNOTATION = _entity("annotation", "annotations", "annotationid", [
    Attribute("annotationid", "Uniqueidentifier", update=False),
    Attribute("subject", S, max_length=500),
    Attribute("notetext", M, max_length=100000),
    Attribute("objectid", "Lookup"),
    Attribute("isdocument", "Boolean"),
    Attribute("filename", S, max_length=255),
    Attribute("mimetype", S, max_length=256),
    Attribute("createdon", "DateTime", **RO),
], navigation={"objectid_incident": ("incidents", "objectid"), "objectid_contact": ("contacts", "objectid")})

INCIDENTRESOLUTION = _entity("incidentresolution", "incidentresolutions", "activityid", [
    Attribute("activityid", "Uniqueidentifier", update=False),
    Attribute("subject", S, max_length=200),
    Attribute("description", M, max_length=2000),
    Attribute("incidentid", "Lookup"),
    Attribute("timespent", "Integer"),
], navigation={"incidentid": ("incidents", "incidentid")})

ENTITY_SETS: dict[str, Entity] = {e.entity_set: e for e in (CONTACT, INCIDENT, ANNOTATION, INCIDENTRESOLUTION)}
SYSTEM_QUERY_OPTIONS = frozenset({"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$apply", "$skip"})
SUPPORTED_QUERY_OPTIONS = frozenset({"$select", "$filter", "$orderby", "$top"})  # what the stand-in implements
FORMATTED = "OData.Community.Display.V1.FormattedValue"
